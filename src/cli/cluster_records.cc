#include "cli/cluster_records.h"

#include <map>
#include <mutex>
#include <string>

#include "volumes/open.h"

namespace offcore {

Result<std::shared_ptr<volumes::RecordStore>> clusterRecords(const CliContext& ctx, const volumes::RecordKind& kind) {
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<volumes::RecordStore>> opened;
  std::lock_guard<std::mutex> l(mu);
  const std::string key = ctx.config.cluster_store + "\n" + ctx.config.cluster_dir + "\n" + kind.folder;
  if (auto it = opened.find(key); it != opened.end()) return it->second;
  OC_ASSIGN_OR_RETURN(auto store, volumes::openRecordStore(ctx.config, kind));
  std::shared_ptr<volumes::RecordStore> shared = std::move(store);
  opened[key] = shared;
  return shared;
}

}  // namespace offcore
