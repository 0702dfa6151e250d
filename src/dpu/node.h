// A software DPU node: its two domains (SoC and host), its fabric uplink and
// host-VF, and the agent that runs inside the SoC domain.
//
// All functions here run in the CLI process, as root. They are the only code
// that creates or destroys a node's kernel objects; the agent only adds VFs
// and services inside an existing node.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/config.h"
#include "base/result.h"
#include "dpu/cgroup.h"
#include "dpu/layout.h"
#include "dpu/node_state.h"

namespace offcore {

struct NodeSpec {
  std::string name;
  std::string soc_cpus;    // "" = the last online cpu
  std::string host_cpus;   // "" = every other online cpu
  std::string soc_memory;  // "" = unlimited, else "512M", "2G"...
  std::string host_netns;  // "" = the namespace of the caller (root)
};

enum class Domain { kSoc, kHost, kHostInfra };
Result<Domain> parseDomain(const std::string& text);

class NodeManager {
 public:
  static Result<NodeManager> create(const Config& config);

  // Creates everything and starts the agent; returns once the agent answers.
  // Any failure rolls back whatever was created.
  Result<NodeState> up(const NodeSpec& spec);
  // Removes everything the node created. Idempotent; works without an agent
  // and after a half-finished up.
  Status down(const std::string& name);
  // Replaces the node's agent: asks a live one to exit without stopping
  // its services (a hung one is killed), then starts a new one, which adopts
  // the services and VFs and re-programs the dataplane. Forwarding goes on
  // meanwhile: the BPF programs and pinned maps do not belong to the agent.
  // Returns the state with the new agent's pid.
  Result<NodeState> restartAgent(const std::string& name);
  std::vector<std::string> list() const;
  bool exists(const std::string& name) const;
  Result<NodeState> state(const std::string& name) const;

  // For SpawnOptions::in_child: joins the domain (netns and/or cgroup).
  Status enterDomain(const NodeState& node, Domain domain);
  // Runs argv in the domain and returns its exit code.
  Result<int> execInDomain(const std::string& name, Domain domain, const std::vector<std::string>& argv);

  // Builds the status document (see docs/API.md) from the cgroups; the
  // services and vfs parts come from the agent and are passed in.
  Result<std::string> statusJson(const std::string& name, const std::string& services_json, const std::string& vfs_json,
                                 const std::string& agent_state) const;

  CgroupDriver& cgroups() { return *cgroups_; }
  const Config& config() const { return config_; }
  NodeLayout layout(const std::string& name) const { return NodeLayout::forNode(config_, name); }

 private:
  NodeManager(Config config, std::unique_ptr<CgroupDriver> cgroups);
  Result<NodeState> plan(const NodeSpec& spec) const;
  Status build(NodeState& state);
  Status startAgent(NodeState& state);
  Status stopAgentKeepingServices(const NodeState& state);
  // Starts `offcore ROLE --name NODE` (agent, watchdog) in the SoC domain,
  // in its own session, logging to the agent log.
  Result<pid_t> spawnInSoc(const NodeState& state, const std::string& role);
  // The agent's watchdog (dpu/agent_watchdog.h), in the SoC domain.
  Status startWatchdog(NodeState& state);
  void stopWatchdog(const NodeState& state);
  void teardown(const std::string& name);

  Config config_;
  std::unique_ptr<CgroupDriver> cgroups_;
};

// The SoC's nft table: masquerade of the host-VF link onto the uplink, and
// the default-deny input chain (only VXLAN from the fabric, ICMP, replies).
std::string socRuleset(const std::string& uplink_if, const std::string& host_link_cidr);

// Errors early with a one-line message if we are not root or a tool is missing.
Status checkPrerequisites();

}  // namespace offcore
