#include "base/json.h"
#include "dpu/node_state.h"

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

Status saveNodeState(const std::string& path, const NodeState& state) {
  return writeFileAtomic(path, state.toJson());
}

Result<uint64_t> parseByteSize(const std::string& text) {
  if (text.empty()) return makeError("empty size (write it like 512M or 2G)");
  size_t i = 0;
  uint64_t v = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    uint64_t next = v * 10 + static_cast<uint64_t>(text[i] - '0');
    if (next < v) return makeError("size '" + text + "' is too large");
    v = next;
    ++i;
  }
  if (i == 0) return makeError("bad size '" + text + "' (write it like 512M or 2G)");
  std::string unit = text.substr(i);
  uint64_t mult = 1;
  if (unit.empty() || unit == "B") mult = 1;
  else if (unit == "K" || unit == "KiB" || unit == "k") mult = 1ULL << 10;
  else if (unit == "M" || unit == "MiB") mult = 1ULL << 20;
  else if (unit == "G" || unit == "GiB") mult = 1ULL << 30;
  else if (unit == "T" || unit == "TiB") mult = 1ULL << 40;
  else return makeError("bad size unit '" + unit + "' in '" + text + "' (use K, M, G or T)");
  if (v != 0 && v * mult / mult != v) return makeError("size '" + text + "' is too large");
  return v * mult;
}

}  // namespace offcore
