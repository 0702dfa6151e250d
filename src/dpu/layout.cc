#include "dpu/layout.h"

namespace offcore {

Status validateName(const std::string& kind, const std::string& name) {
  auto bad = [&](const std::string& why) {
    return makeError("bad " + kind + " name '" + name + "': " + why +
                     " (use 1-10 of a-z, 0-9 and '-', starting with a letter)");
  };
  if (name.empty()) return bad("it is empty");
  if (name.size() > 10) return bad("it is longer than 10 characters");
  if (name[0] < 'a' || name[0] > 'z') return bad("it must start with a letter");
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
    if (!ok) return bad(std::string("'") + c + "' is not allowed");
  }
  return okStatus();
}

NodeLayout NodeLayout::forNode(const Config& config, const std::string& name) {
  NodeLayout l;
  l.name = name;
  l.run_dir = config.run_root + "/" + name;
  l.api_socket = l.run_dir + "/api.sock";
  l.state_file = l.run_dir + "/node.json";
  l.agent_log = l.run_dir + "/agent.log";
  l.mesh_file = l.run_dir + "/mesh.json";
  l.soc_netns = "oc-" + name + "-soc";
  l.cg_node = config.cgroup_root + "/" + name;
  l.cg_soc = l.cg_node + "/soc";
  l.cg_host = l.cg_node + "/host";
  l.cg_host_infra = l.cg_node + "/host-infra";
  l.uplink_fabric_if = "ocu-" + name;
  l.uplink_soc_if = "up0";
  l.hostvf_host_if = "och-" + name;
  l.hostvf_soc_if = "hvf0";
  return l;
}

std::string ipv4(const std::string& prefix16, int third, int fourth) {
  return prefix16 + "." + std::to_string(third) + "." + std::to_string(fourth);
}

}  // namespace offcore
