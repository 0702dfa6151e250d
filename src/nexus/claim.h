// ReplicaClaim: fencing between nexuses. A nexus holds an exclusive claim on
// every replica it writes, so two nexuses (two nodes, or one node twice
// under other names) can never write one volume at once: the second is
// refused and told who holds it. A claim is a flock on one lock file per
// replica under the cluster directory, the same mechanism as the cluster
// state (cluster_store.h); the kernel drops it when the holder dies, so a
// crashed disk service never leaves a volume fenced off.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/result.h"

namespace offcore::nexus {

class ReplicaClaim {
 public:
  ~ReplicaClaim();
  ReplicaClaim(const ReplicaClaim&) = delete;
  ReplicaClaim& operator=(const ReplicaClaim&) = delete;

  // Claims every replica (by its journal name) for `holder` (e.g. "node
  // n1, disk d, pid 123"), all or none. Lock files are 0600 under `dir`.
  static Result<std::unique_ptr<ReplicaClaim>> acquire(const std::string& dir, const std::vector<std::string>& replicas,
                                                       const std::string& holder);

 private:
  ReplicaClaim() = default;
  std::vector<int> fds_;
  std::vector<std::string> paths_;
};

}  // namespace offcore::nexus
