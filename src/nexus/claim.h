// ReplicaClaim: fencing between nexuses. A nexus holds an exclusive claim on
// every replica it writes, so two nexuses (two nodes, or one node twice
// under other names) can never write one volume at once: the second is
// refused and told who holds it. Where claims live is the Impl's business:
// a flock per replica under the cluster directory (claimReplicasInDir, the
// kernel drops it when the holder dies), or keys under an etcd lease
// (src/volumes, expired when the holder stops renewing it).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/result.h"

namespace offcore::nexus {

// Who claims: `owner` names the holder the same way across its restarts
// ("node n1 (disk d)"), so a restarted disk service takes over what its
// predecessor held; `pid` only informs the one refused.
struct ClaimHolder {
  std::string owner;
  int pid = 0;
  std::string describe() const { return pid > 0 ? owner + " (pid " + std::to_string(pid) + ")" : owner; }
};

class ReplicaClaim {
 public:
  virtual ~ReplicaClaim() = default;  // releases every replica
  // "" while the claim holds; otherwise why it may no longer (its lease
  // could not be renewed in time): the holder must stop writing at once.
  virtual std::string lostReason() const = 0;
};

// Claims every replica (by its journal name) for `holder`, all or none,
// with a flock on one 0600 file per replica under `dir` (0700). A replica
// held by anyone else, this process included, is refused with EBUSY.
Result<std::unique_ptr<ReplicaClaim>> claimReplicasInDir(const std::string& dir,
                                                         const std::vector<std::string>& replicas,
                                                         const ClaimHolder& holder);

}  // namespace offcore::nexus
