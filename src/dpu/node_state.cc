#include "dpu/node_state.h"
#include "base/json.h"

#include <cctype>
#include <nlohmann/json.hpp>

#include "base/files.h"

namespace offcore {

using nlohmann::json;

std::string NodeState::toJson() const {
  json j{{"name", name},
         {"soc_cpus", formatCpuList(soc_cpus)},
         {"host_cpus", formatCpuList(host_cpus)},
         {"host_netns", host_netns},
         {"created_host_netns", created_host_netns},
         {"fabric_index", fabric_index},
         {"uplink_ip", uplink_ip},
         {"hostvf_soc_ip", hostvf_soc_ip},
         {"hostvf_host_ip", hostvf_host_ip},
         {"cgroup_version", cgroup_version},
         {"agent_pid", agent_pid},
         {"watchdog_pid", watchdog_pid},
         {"phase", phase}};
  if (soc_memory_limit) j["soc_memory_limit"] = *soc_memory_limit;
  return dumpJson(j, 2) + "\n";
}

Result<NodeState> NodeState::fromJson(const std::string& text, const std::string& origin) {
  auto j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return makeError(origin + ": not a JSON object");
  NodeState s;
  try {
    s.name = j.at("name").get<std::string>();
    OC_ASSIGN_OR_RETURN(s.soc_cpus, parseCpuList(j.at("soc_cpus").get<std::string>()));
    OC_ASSIGN_OR_RETURN(s.host_cpus, parseCpuList(j.at("host_cpus").get<std::string>()));
    s.host_netns = j.value("host_netns", "");
    s.created_host_netns = j.value("created_host_netns", false);
    s.fabric_index = j.value("fabric_index", -1);
    s.uplink_ip = j.value("uplink_ip", "");
    s.hostvf_soc_ip = j.value("hostvf_soc_ip", "");
    s.hostvf_host_ip = j.value("hostvf_host_ip", "");
    s.cgroup_version = j.value("cgroup_version", "");
    s.agent_pid = j.value("agent_pid", 0);
    s.watchdog_pid = j.value("watchdog_pid", 0);
    s.phase = j.value("phase", "");
    if (j.contains("soc_memory_limit")) s.soc_memory_limit = j["soc_memory_limit"].get<uint64_t>();
  } catch (const json::exception& e) {
    return makeError(origin + ": " + e.what());
  }
  return s;
}

Result<NodeState> loadNodeState(const std::string& path) {
  OC_ASSIGN_OR_RETURN(std::string text, readFile(path));
  return NodeState::fromJson(text, path);
}

Status saveNodeState(const std::string& path, const NodeState& state) { return writeFileAtomic(path, state.toJson()); }

}  // namespace offcore
