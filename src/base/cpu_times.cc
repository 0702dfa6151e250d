#include "base/cpu_times.h"

#include <unistd.h>

#include <sstream>

#include "base/files.h"

namespace offcore {

Result<std::map<int, CpuTimes>> parseCpuTimes(const std::string& proc_stat, long ticks_per_second) {
  if (ticks_per_second <= 0) return makeError("cpu times: bad clock tick rate");
  std::map<int, CpuTimes> out;
  std::istringstream in(proc_stat);
  std::string line;
  const double hz = static_cast<double>(ticks_per_second);
  while (std::getline(in, line)) {
    if (line.size() < 4 || line.compare(0, 3, "cpu") != 0 || line[3] < '0' || line[3] > '9') continue;
    std::istringstream f(line.substr(3));
    int cpu = -1;
    unsigned long long v[8] = {};
    f >> cpu;
    for (auto& x : v) f >> x;
    if (!f || cpu < 0) return makeError("cpu times: cannot parse /proc/stat line '" + line + "'");
    out[cpu] = CpuTimes{v[0] / hz, v[1] / hz, v[2] / hz, v[3] / hz, v[4] / hz, v[5] / hz, v[6] / hz, v[7] / hz};
  }
  if (out.empty()) return makeError("cpu times: no per-cpu lines in /proc/stat");
  return out;
}

Result<std::map<int, CpuTimes>> readCpuTimes() {
  OC_ASSIGN_OR_RETURN(std::string text, readFile("/proc/stat"));
  return parseCpuTimes(text, ::sysconf(_SC_CLK_TCK));
}

CpuTimes sumCpuTimes(const std::map<int, CpuTimes>& times, const CpuSet& cpus) {
  CpuTimes s;
  for (int c : cpus) {
    auto it = times.find(c);
    if (it == times.end()) continue;
    const CpuTimes& t = it->second;
    s.user += t.user, s.nice += t.nice, s.system += t.system, s.idle += t.idle;
    s.iowait += t.iowait, s.irq += t.irq, s.softirq += t.softirq, s.steal += t.steal;
  }
  return s;
}

}  // namespace offcore
