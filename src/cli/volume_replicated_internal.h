// What volume_replicated.cc shares with volume_replica.cc (`volume replica
// add/remove/move`) and nothing else: the record's place, the machine-wide
// lock of the replicated volumes, names.
#pragma once

#include <string>

#include "base/result.h"
#include "cli/common.h"
#include "cli/volume_replicated.h"

namespace offcore {

std::string volumesDir(const CliContext& ctx);
std::string volumeRecordPath(const CliContext& ctx, const std::string& name);
Status checkVolumeName(const std::string& name);
// The journal's name of a replica, as `disk serve` names it.
std::string replicaNameOf(const std::string& uri);
// Writes <cluster_dir>/volumes/NAME.json (0600, atomic).
Status saveReplicatedVolume(const CliContext& ctx, const ReplicatedVolume& v);

// Serialises changes to replicated volumes machine-wide (a flock on
// <cluster_dir>/volumes/.lock), held for the guard's life.
class VolumesLock {
 public:
  static Result<VolumesLock> take(const CliContext& ctx);
  VolumesLock(VolumesLock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  VolumesLock(const VolumesLock&) = delete;
  VolumesLock& operator=(const VolumesLock&) = delete;
  VolumesLock& operator=(VolumesLock&&) = delete;
  ~VolumesLock();

 private:
  explicit VolumesLock(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace offcore
