// `offcore bench storage`, replicated volumes (issue 17): the same fio job
// on a disk mirrored by the SoC's nexus over 2 and 3 gateways against the
// single-replica disk, in one run; then I/O with one replica lost
// (degraded), and the rebuild's throughput while the disk serves reads.
#pragma once

#include <string>
#include <vector>

#include "base/config.h"
#include "base/result.h"
#include "bench/report.h"

namespace offcore {

struct ReplicaBenchSetup {
  std::string node;          // a node that is up
  std::string id;            // unique suffix for fabric hosts and volumes
  std::string work;          // scratch directory (removed by the caller)
  std::string gateway_cpus;  // gateways run pinned here (the host domain's cpus), as in the rest of the suite
};

struct ReplicaBenchResult {
  std::vector<BenchRow> rows;
  std::vector<std::string> notes;
};

Result<ReplicaBenchResult> measureReplicas(const Config& config, const ReplicaBenchSetup& setup, bool quick, int runs);

}  // namespace offcore
