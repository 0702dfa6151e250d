// Replicated volumes (issue 17): one volume of the same name and size on N
// gateways, each on its own storage host, recorded where the config keeps
// cluster state (src/volumes: <cluster_dir>/volumes/NAME.json, or etcd) and
// attached as one mirrored disk (`disk attach --volume NAME`: the SoC's
// nexus, its journal and claims beside the records).
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/result.h"
#include "cli/common.h"
#include "gateway/client.h"

namespace offcore {

struct ReplicaPlace {
  std::string target;  // the gateway's name
  std::string uri;     // nvme-tcp://ADDR:PORT/NQN
};

struct ReplicatedVolume {
  std::string name;
  uint64_t size_bytes = 0;
  std::string parent;  // the volume a snapshot is of, or the snapshot a clone is of
  bool read_only = false;
  std::vector<ReplicaPlace> replicas;
  int64_t created_unix_ns = 0;  // when it was made (0: a record older than the field)
};

// Where a volume is attached now, from the disk records of every node.
struct AttachedAt {
  std::string node, disk, file;
  std::string state;    // the nexus's (online, degraded, ...) or the initiator's path state
  std::string problem;  // "" when every replica is online
};
// The wall clock in ns since the epoch: the creation times records carry
// (volumes, snapshots, the CSI catalog).
int64_t unixNowNs();

std::optional<AttachedAt> replicatedAttachedAt(const CliContext& ctx, const ReplicatedVolume& v);
Result<std::vector<std::string>> replicatedVolumeNames(const CliContext& ctx);  // sorted

// ENOENT (Error::code) when no replicated volume has that name.
Result<ReplicatedVolume> loadReplicatedVolume(const CliContext& ctx, const std::string& name);
// What a disk's --journal and record carry for volume `id` (a path, or etcd:ID).
Result<std::string> nexusJournalRef(const CliContext& ctx, const std::string& id);

// The operations, with no output (the `volume` commands print; the CSI
// controller calls them). Error codes: EEXIST a name taken, EBUSY attached
// or behind or with clones, ENOSPC too few hosts or no space, EINVAL bad
// input, ERANGE a shrink.
//
// Creates the volume on `replicas` of `targets` (distinct storage hosts),
// all or none. Host access entries that would make a secret per gateway get
// one secret made here, the same on every replica (the node has one), and
// listed in *new_secrets.
Result<ReplicatedVolume> makeReplicatedVolume(const CliContext& ctx, const std::string& name, uint64_t size,
                                              int replicas, const std::vector<std::string>& targets,
                                              std::vector<HostAccess> hosts, nlohmann::json* new_secrets = nullptr);
Status removeReplicatedVolume(const CliContext& ctx, const ReplicatedVolume& v, bool force);
Result<ReplicatedVolume> snapshotReplicated(const CliContext& ctx, const ReplicatedVolume& v, const std::string& snap);
Result<ReplicatedVolume> cloneReplicated(const CliContext& ctx, const ReplicatedVolume& snap, const std::string& name);
Status growReplicated(const CliContext& ctx, const ReplicatedVolume& v, uint64_t size);

// A replica on `target` (a storage host holding none of the volume's),
// made empty and rebuilt whole by the nexus; an attached disk takes it by a
// handover and, with `wait`, the call returns once it is online.
Result<ReplicatedVolume> addReplica(const CliContext& ctx, const ReplicatedVolume& v, const std::string& target,
                                    const std::string& secret_file, bool wait);
// Takes the replica on `target` out (refused while no other replica holds
// everything), then deletes its copy there.
Result<ReplicatedVolume> removeReplica(const CliContext& ctx, const ReplicatedVolume& v, const std::string& target);
void registerVolumeReplicaCommands(CLI::App* volume, CliContext& ctx);

int createReplicatedVolume(const CliContext& ctx, const std::string& name, uint64_t size, int replicas,
                           const std::vector<std::string>& targets, std::vector<HostAccess> hosts, bool json);
int getReplicatedVolume(const CliContext& ctx, const ReplicatedVolume& v, bool json);
int listReplicatedVolumes(const CliContext& ctx, bool json);
// Refused while a nexus holds the replicas (attached somewhere).
int deleteReplicatedVolume(const CliContext& ctx, const ReplicatedVolume& v, bool force);
// Snapshot, clone and resize of a replicated volume act on every replica,
// with no nexus writing it (detached; a snapshot of a volume in use would
// need its writes held on every replica at once, not done yet) and, for a
// snapshot, every replica in sync (the journal names none behind).
int snapshotReplicatedVolume(const CliContext& ctx, const ReplicatedVolume& v, const std::string& snap, bool json);
int cloneReplicatedVolume(const CliContext& ctx, const ReplicatedVolume& snap, const std::string& name, bool json);
int resizeReplicatedVolume(const CliContext& ctx, const ReplicatedVolume& v, uint64_t size);

}  // namespace offcore
