// The measurements of scripts/bench/vm.sh (one JSON line per fio job in a
// guest) and their medians over the runs: pure, so the suite's arithmetic is
// unit-tested without a guest.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "base/stats.h"

namespace offcore {

// One fio job in one guest: `mode` is offcore | qsd | qemu, `job` is
// randread | randwrite | seqread | seqwrite.
struct VmJob {
  double ios = 0, kib = 0, runtime_s = 0;
  double host_cpu_s = 0, soc_cpu_s = 0, wall_s = 0;
  double iops() const { return runtime_s > 0 ? ios / runtime_s : 0; }
  double mibps() const { return runtime_s > 0 ? kib / 1024 / runtime_s : 0; }
  // CPU microseconds per I/O of the window around the job.
  double hostUsPerIo() const { return ios > 0 ? 1e6 * host_cpu_s / ios : 0; }
  double socUsPerIo() const { return ios > 0 ? 1e6 * soc_cpu_s / ios : 0; }
};

class VmResults {
 public:
  // Lines without "case":"fio", or with no I/O done, are skipped; returns
  // how many jobs were taken.
  int add(const std::vector<nlohmann::json>& lines);
  bool empty() const { return jobs_.empty(); }
  // Median over the runs of f(job); nullopt when the mode never ran the job.
  template <typename F>
  std::optional<double> median(const std::string& mode, const std::string& job, F f) const {
    auto it = jobs_.find({mode, job});
    if (it == jobs_.end() || it->second.empty()) return std::nullopt;
    std::vector<double> v;
    for (const VmJob& j : it->second) v.push_back(f(j));
    return offcore::median(std::move(v));
  }
  int runs(const std::string& mode, const std::string& job) const;

 private:
  std::map<std::pair<std::string, std::string>, std::vector<VmJob>> jobs_;
};

}  // namespace offcore
