#include "bench/proc_stats.h"

#include <unistd.h>

#include <string>
#include <vector>

#include "base/files.h"
#include "base/subprocess.h"

namespace offcore {

Result<double> processCpuSeconds(pid_t pid) {
  OC_ASSIGN_OR_RETURN(std::vector<std::string> f, procStatFields(pid));
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
