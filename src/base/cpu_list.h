// CPU lists in the kernel's own format ("0-3,6"), as cpuset files use them.
#pragma once

#include <set>
#include <string>

#include "base/result.h"

namespace offcore {

using CpuSet = std::set<int>;

Result<CpuSet> parseCpuList(const std::string& text);
std::string formatCpuList(const CpuSet& cpus);
// The cpus the kernel has online (/sys/devices/system/cpu/online).
Result<CpuSet> onlineCpus();

}  // namespace offcore
