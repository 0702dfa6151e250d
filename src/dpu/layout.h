// Where a node's pieces live. Every name is derived from the node name alone,
// so `dpu down` can find and remove them even when node.json was never
// written (a half-finished `up`) or the agent is gone.
#pragma once

#include <string>

#include "base/config.h"
#include "base/result.h"

namespace offcore {

// Node and fabric-host names: 1-10 chars of [a-z0-9-], starting with a
// letter. The limit keeps derived interface names within IFNAMSIZ (15).
Status validateName(const std::string& kind, const std::string& name);

struct NodeLayout {
  std::string name;
  std::string run_dir;     // <run_root>/<name>
  std::string api_socket;  // the API channel
  std::string state_file;  // node.json
  std::string agent_log;
  std::string mesh_file;         // mesh.json: present while the node runs the service mesh (src/mesh)
  std::string soc_netns;         // oc-<name>-soc
  std::string cg_node;           // offcore/<name>
  std::string cg_soc;            // offcore/<name>/soc: every offloaded service
  std::string cg_host;           // offcore/<name>/host: tenant work
  std::string cg_host_infra;     // offcore/<name>/host-infra: host-side offcore pieces
  std::string uplink_fabric_if;  // ocu-<name>, fabric side of the uplink
  std::string uplink_soc_if;     // up0, SoC side
  std::string hostvf_host_if;    // och-<name>, host side of the host-VF
  std::string hostvf_soc_if;     // hvf0, SoC side

  static NodeLayout forNode(const Config& config, const std::string& name);
};

// "10.77" + 0 + 12 -> "10.77.0.12"
std::string ipv4(const std::string& prefix16, int third, int fourth);

}  // namespace offcore
