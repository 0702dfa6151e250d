// Where replicated volumes (and the records of the CSI catalog and VMs)
// live for a config: its cluster store when that is etcd://..., else its
// cluster directory (volumes/, nexus/, csi/, vms/ in it).
#pragma once

#include <memory>

#include "base/config.h"
#include "base/result.h"
#include "volumes/nexus_state.h"
#include "volumes/record_store.h"

namespace offcore::volumes {

struct VolumeStores {
  std::shared_ptr<RecordStore> records;
  std::shared_ptr<NexusState> nexus;
};

// Both over one etcd client when the store is etcd.
Result<VolumeStores> openVolumeStores(const Config& config);

// The config's records of `kind` (the CSI catalog, VMs): etcd when
// cluster_store is etcd://..., else <cluster_dir>/<kind.folder>.
Result<std::unique_ptr<RecordStore>> openRecordStore(const Config& config, const RecordKind& kind);

// Records the cluster directory held before the config named an etcd
// store: copied into `to` once (create-if-absent; a record both hold with
// other contents is an error naming it), then <cluster_dir>/<kind.folder>
// renamed <folder>.imported so nothing removed in etcd comes back. With
// `nexus_to` (volumes) each volume's nexus journal goes first, and not while
// a disk attached in directory mode still holds its claims (EBUSY).
// Nothing to do (the folder gone): ok. The open* functions call it.
Status importDirRecords(const Config& config, RecordStore& to, const RecordKind& kind, NexusState* nexus_to = nullptr);

// The state a disk's `--journal` reference names (etcd:ID: the config's
// etcd; a path: its directory), and the id in it.
Result<std::unique_ptr<NexusState>> openNexusStateFor(const Config& config, const JournalRef& ref,
                                                      int claim_ttl_s = kDefaultClaimTtlS);

}  // namespace offcore::volumes
