#include "bench/vm_results.h"

namespace offcore {

int VmResults::add(const std::vector<nlohmann::json>& lines) {
  int taken = 0;
  for (const nlohmann::json& j : lines) {
    if (!j.is_object() || j.value("case", "") != "fio") continue;
    VmJob r;
    r.ios = j.value("ios", 0.0);
    r.kib = j.value("kib", 0.0);
    r.runtime_s = j.value("runtime_ms", 0.0) / 1000;
    r.host_cpu_s = j.value("host_cpu_s", 0.0);
    r.soc_cpu_s = j.value("soc_cpu_s", 0.0);
    r.wall_s = j.value("wall_s", 0.0);
    if (r.ios <= 0 || r.runtime_s <= 0) continue;
    jobs_[{j.value("mode", ""), j.value("job", "")}].push_back(r);
    ++taken;
  }
  return taken;
}

int VmResults::runs(const std::string& mode, const std::string& job) const {
  auto it = jobs_.find({mode, job});
  return it == jobs_.end() ? 0 : static_cast<int>(it->second.size());
}

}  // namespace offcore
