// Per-cpu time from /proc/stat: where work really ran, whoever it was
// charged to. Softirq work (packet receive, the BPF dataplane) is charged to
// whatever task it interrupted or to no cgroup at all when the cpu was idle,
// so cgroup accounting cannot show it; the per-cpu softirq column can (tick
// sampled: this kernel has no IRQ_TIME_ACCOUNTING, so it is a 1/HZ
// resolution sample, good over seconds, not over milliseconds).
#pragma once

#include <map>
#include <string>

#include "base/cpu_list.h"
#include "base/result.h"

namespace offcore {

struct CpuTimes {
  double user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;  // seconds
  double busy() const { return user + nice + system + irq + softirq; }
};

// Parses /proc/stat text: cpu index -> times (the "cpu" total line is skipped).
Result<std::map<int, CpuTimes>> parseCpuTimes(const std::string& proc_stat, long ticks_per_second);
Result<std::map<int, CpuTimes>> readCpuTimes();
// The sum over `cpus` (cpus absent from `times` count zero).
CpuTimes sumCpuTimes(const std::map<int, CpuTimes>& times, const CpuSet& cpus);

}  // namespace offcore
