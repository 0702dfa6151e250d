// Picking the StateStorage the config names, and the one that stands in
// when it cannot be opened.
#include <algorithm>

#include "kv/etcd_config.h"
#include "svc/state_storage.h"

namespace offcore::svc {

void StateDelta::merge(const StateDelta& o) {
  full = full || o.full;
  objects.insert(o.objects.begin(), o.objects.end());
  health = health || o.health;
  live = live || o.live;
  owners = owners || o.owners;
  if (o.generation != 0) generation = o.generation;
}

Result<bool> StateStorage::refresh(ClusterState& state, const StateDelta&) const {
  OC_ASSIGN_OR_RETURN(state, load());
  return true;
}

Result<std::map<std::string, uint64_t>> StateStorage::loadProgrammed() const {
  OC_ASSIGN_OR_RETURN(auto health, loadHealth());
  std::map<std::string, uint64_t> out;
  for (const auto& [node, h] : health) out[node] = h.programmed_generation;
  return out;
}

namespace {

// Every call fails with the reason the real store could not be opened.
class UnusableStorage final : public StateStorage {
 public:
  explicit UnusableStorage(Error why) : why_(std::move(why)) {}
  Result<ClusterState> load() const override { return why_; }
  Status modify(const Change&, uint64_t*, unsigned) override { return why_; }
  Status heartbeat(const std::string&, uint64_t) override { return why_; }
  std::map<std::string, uint64_t> loadHeartbeats() const override { return {}; }
  Status writeHealth(const NodeHealth&) override { return why_; }
  Result<std::map<std::string, NodeHealth>> loadHealth() const override { return why_; }
  Status forgetNode(const std::string&) override { return why_; }
  Result<std::string> claim(const std::string&, const std::string&, bool) override { return why_; }
  Result<std::map<std::string, std::string>> claims() const override { return why_; }
  Result<std::unique_ptr<StoreWatch>> watch(EventLoop&, Changed) override { return why_; }
  std::string describe() const override { return "(unusable cluster store)"; }

 private:
  Error why_;
};

}  // namespace

Result<std::shared_ptr<StateStorage>> openStateStorage(const Config& config, const std::string& location) {
  std::string where = !location.empty()               ? location
                      : !config.cluster_store.empty() ? config.cluster_store
                                                      : config.cluster_dir;
  if (!kv::isEtcdUrl(where)) return makeDirStorage(where);
  OC_ASSIGN_OR_RETURN(kv::EtcdOptions o, kv::etcdOptionsFor(config, where));
  return makeEtcdStorage(kv::makeEtcdClient(std::move(o)), leaseTtlSeconds(config));
}

int64_t leaseTtlSeconds(const Config& config) { return std::max<int64_t>(2, (config.node_expiry_ms + 999) / 1000); }

std::shared_ptr<StateStorage> openStateStorageOrUnusable(const Config& config) {
  auto s = openStateStorage(config);
  if (s.ok()) return *s;
  return std::make_shared<UnusableStorage>(s.error());
}

}  // namespace offcore::svc
