// Per-process CPU and memory from /proc, for benchmarks that measure one
// daemon (the agent, the gateway) rather than a whole cgroup.
#pragma once

#include <sys/types.h>

#include "base/result.h"

namespace offcore {

// utime + stime of every thread of pid, in seconds.
Result<double> processCpuSeconds(pid_t pid);
Result<double> processRssMiB(pid_t pid);

}  // namespace offcore
