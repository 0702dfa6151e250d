// What volume_replicated.cc shares with volume_replica.cc (`volume replica
// add/remove/move`) and nothing else: the record's place, the machine-wide
// lock of the replicated volumes, names.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "base/result.h"
#include "cli/common.h"
#include "cli/volume_replicated.h"
#include "nexus/nexus_journal.h"
#include "volumes/open.h"

namespace offcore {

// The records, journals and claims for ctx's config (volumes/open.h),
// opened once per process.
Result<volumes::VolumeStores> volumeStores(const CliContext& ctx);
Status checkVolumeName(const std::string& name);
// The journal's name of a replica, as `disk serve` names it.
std::string replicaNameOf(const std::string& uri);
// Writes the volume's record (volumes/record_store.h).
Status saveReplicatedVolume(const CliContext& ctx, const ReplicatedVolume& v);

// Serialises changes to replicated volumes (cluster-wide with etcd), held
// for the guard's life; `what` names the command to one kept waiting.
Result<std::unique_ptr<volumes::RecordLock>> lockVolumes(const CliContext& ctx, const std::string& what);

// The volume's nexus journal: nullopt when none was saved (never attached
// as a mirror). With `claim`, a save is refused once it is no longer held.
Result<std::optional<nexus::NexusRecord>> loadNexusRecord(const CliContext& ctx, const std::string& id);
Status saveNexusRecord(const CliContext& ctx, const std::string& id, const nexus::NexusRecord& rec,
                       const nexus::ReplicaClaim* claim);

}  // namespace offcore
