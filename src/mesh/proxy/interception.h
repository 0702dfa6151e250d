// Interception: the kernel side of the node proxy, in the SoC's network
// namespace. The BPF dataplane marks a mesh pod's TCP (OC_MARK_MESH_OUT) and
// untranslated TCP to a local mesh pod (OC_MARK_MESH_IN) and hands it to the
// SoC's stack; these rules then
//   - deliver packets of connections the proxy already holds to its
//     transparent sockets (`socket transparent 1`),
//   - TPROXY new connections (SYN) to the outbound or inbound listener,
// and policy routing (fwmark OC_MARK_MESH_LOCAL -> table 4243, local 0/0)
// makes both local deliveries. Nothing is installed in any pod's namespace.
//
// All of it is idempotent and survives the proxy (a restarted or upgraded
// proxy finds it in place); `remove()` is for `offcore mesh down`.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "base/result.h"
#include "mesh/config/snapshot.h"

namespace offcore::mesh {

struct InterceptionPorts {
  uint16_t outbound = 15001;
  uint16_t inbound = 15006;
  uint16_t hbone = 15008;
  uint16_t metrics = 15020;  // Prometheus text, 127.0.0.1 in the SoC
};

inline constexpr uint32_t kMeshRouteTable = 4243;
inline constexpr int kMeshRouteProto = 243;  // `proto` of the pod routes the proxy keeps

// The nft script for the mesh's table (pure; tested).
std::string interceptionRuleset(const InterceptionPorts& ports);

// Installs the rules, the policy routing and the sysctls in the named network
// namespace ("" = the calling process's: the proxy runs in the SoC).
// uplink_if: where HBONE arrives.
Status installInterception(const std::string& netns, const InterceptionPorts& ports, const std::string& uplink_if);
// Removes everything installInterception and syncPodRoutes added.
Status removeInterception(const std::string& netns);

// The SoC's stack routes each local pod's /32 to its representor (the proxy
// talks to pods from their peers' addresses, so it needs a route back), and
// each plain pod of another node to its VPC's mesh return link (the proxy
// answers a plain pod that came over the tunnel, from the mesh pod's
// address; the dataplane tunnels it). has_link: whether a VPC's return link
// exists (the agent makes it with the VPC's first mesh pod here). Pure.
std::map<std::string, std::string> podRouteTargets(const std::vector<MeshWorkload>& workloads,
                                                   const std::string& self_node,
                                                   const std::function<bool(uint32_t vni)>& has_link);

// Makes the SoC's proto-243 routes `want` (address -> device, from
// podRouteTargets); extra routes of ours are removed. In the calling
// process's namespace.
Status syncPodRoutes(const std::map<std::string, std::string>& want);

}  // namespace offcore::mesh
