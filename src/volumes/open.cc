#include "volumes/open.h"

#include <cerrno>

#include "kv/etcd_client.h"
#include "kv/etcd_config.h"

namespace offcore::volumes {

namespace {

Result<std::shared_ptr<kv::KvClient>> etcdOf(const Config& config) {
  OC_ASSIGN_OR_RETURN(auto options, kv::etcdOptionsFor(config, config.cluster_store));
  return std::shared_ptr<kv::KvClient>(kv::makeEtcdClient(std::move(options)));
}

// An import that failed says what was being done.
Status imported(const Status& s, const RecordKind& kind) {
  if (s.ok()) return s;
  return s.error().wrap(std::string("moving the ") + kind.plural + " of the cluster directory into etcd");
}

}  // namespace

Result<VolumeStores> openVolumeStores(const Config& config) {
  if (kv::isEtcdUrl(config.cluster_store)) {
    OC_ASSIGN_OR_RETURN(auto kv, etcdOf(config));
    VolumeStores stores{makeKvRecordStore(kv, kVolumeRecords), makeKvNexusState(kv)};
    OC_TRY(imported(importDirRecords(config, *stores.records, kVolumeRecords, stores.nexus.get()), kVolumeRecords));
    return stores;
  }
  return VolumeStores{makeDirRecordStore(config.cluster_dir + "/" + kVolumeRecords.folder, kVolumeRecords),
                      makeDirNexusState(config.cluster_dir + "/nexus")};
}

Result<std::unique_ptr<RecordStore>> openRecordStore(const Config& config, const RecordKind& kind) {
  if (kv::isEtcdUrl(config.cluster_store)) {
    OC_ASSIGN_OR_RETURN(auto kv, etcdOf(config));
    auto store = makeKvRecordStore(kv, kind);
    OC_TRY(imported(importDirRecords(config, *store, kind), kind));
    return store;
  }
  return makeDirRecordStore(config.cluster_dir + "/" + kind.folder, kind);
}

Result<std::unique_ptr<NexusState>> openNexusStateFor(const Config& config, const JournalRef& ref, int claim_ttl_s) {
  if (!ref.etcd) return makeDirNexusState(ref.dir);
  if (!kv::isEtcdUrl(config.cluster_store)) {
    return makeError("journal etcd:" + ref.id + " needs cluster_store etcd://... in the config (" +
                         std::string(config.cluster_store.empty() ? "none set" : config.cluster_store) + ")",
                     EINVAL);
  }
  OC_ASSIGN_OR_RETURN(auto kv, etcdOf(config));
  return makeKvNexusState(kv, claim_ttl_s);
}

}  // namespace offcore::volumes
