// `offcore bench storage`, the target alone (issue 14): `offcore target
// serve` pinned to one cpu with its store in RAM (/dev/shm), our initiator
// (tests/tools offcore-nvme-bench) pinned to another, over loopback. No
// mature target runs on these machines (no SPDK, no nvmet), so the rows
// carry no baseline: they are the figures the speed work is measured by,
// with the target's own cpu time per I/O beside each.
#pragma once

#include <string>
#include <vector>

#include "base/config.h"
#include "base/result.h"
#include "bench/report.h"

namespace offcore {

struct TargetAloneResult {
  std::vector<BenchRow> rows;
  std::vector<std::string> notes;
};

Result<TargetAloneResult> measureTargetAlone(const Config& config, bool quick, int runs);

}  // namespace offcore
