#include "bench/proc_stats.h"

#include <unistd.h>

#include <string>
#include <vector>

#include "base/files.h"

namespace offcore {

Result<double> processCpuSeconds(pid_t pid) {
  OC_ASSIGN_OR_RETURN(std::string stat, readFile("/proc/" + std::to_string(pid) + "/stat"));
  // The command name may hold spaces; fields are counted after its ')'.
  auto close = stat.rfind(')');
  if (close == std::string::npos) return makeError("bad /proc/" + std::to_string(pid) + "/stat");
  std::vector<std::string> f;
  size_t pos = close + 2;
  while (pos < stat.size()) {
    size_t sp = stat.find(' ', pos);
    if (sp == std::string::npos) sp = stat.size();
    f.push_back(stat.substr(pos, sp - pos));
    pos = sp + 1;
  }
  if (f.size() < 13) return makeError("short /proc/" + std::to_string(pid) + "/stat");
  double ticks = std::stod(f[11]) + std::stod(f[12]);  // fields 14 and 15
  return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

Result<double> processRssMiB(pid_t pid) {
  OC_ASSIGN_OR_RETURN(std::string status, readFile("/proc/" + std::to_string(pid) + "/status"));
  auto at = status.find("VmRSS:");
  if (at == std::string::npos) return makeError("no VmRSS for " + std::to_string(pid));
  return std::stod(status.substr(at + 6)) / 1024.0;
}

}  // namespace offcore
