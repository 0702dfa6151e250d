// node.json: what `dpu up` decided and created, written before the first
// change so that `dpu down` can undo a half-finished `up`.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

#include "base/cpu_list.h"
#include "base/result.h"

namespace offcore {

struct NodeState {
  std::string name;
  CpuSet soc_cpus;
  CpuSet host_cpus;
  std::optional<uint64_t> soc_memory_limit;
  std::string host_netns;           // "" = the namespace `dpu up` ran in (root)
  bool created_host_netns = false;  // remove it on down only if we made it
  int fabric_index = -1;
  std::string uplink_ip;       // CIDR on up0
  std::string hostvf_soc_ip;   // CIDR on hvf0
  std::string hostvf_host_ip;  // CIDR on och-<name>
  std::string cgroup_version;
  pid_t agent_pid = 0;     // overlaid from <run_dir>/agent.pid by NodeManager::state()
  pid_t watchdog_pid = 0;  // the agent's watchdog (dpu/agent_watchdog.h)
  std::string phase;       // "creating" until the agent answers, then "up"

  std::string toJson() const;
  static Result<NodeState> fromJson(const std::string& text, const std::string& origin);
};

Result<NodeState> loadNodeState(const std::string& path);
Status saveNodeState(const std::string& path, const NodeState& state);

}  // namespace offcore
