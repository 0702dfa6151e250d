#include "mesh/proxy/workloads.h"

#include <algorithm>

#include "mesh/config/from_cluster.h"

namespace offcore::mesh {

std::vector<MeshWorkload> buildWorkloads(const svc::ClusterState& state, const std::string& self_node,
                                         const std::string& trust_domain) {
  std::vector<MeshWorkload> out;
  out.reserve(state.endpoints.size());
  for (const auto& [id, ep] : state.endpoints) {
    MeshWorkload w;
    w.ip = ep.ip;
    w.name = ep.pod_name;
    w.node = ep.node;
    if (auto n = state.nodes.find(ep.node); n != state.nodes.end()) w.node_ip = n->second.fabric_ip;
    Membership m = endpointMembership(ep);
    w.ns = m.ns;
    w.service_account = m.service_account;
    w.mesh = m.mesh;
    if (m.mesh) w.identity = spiffeId(trust_domain, m.ns, m.service_account);
    if (ep.node == self_node) w.representor = ep.representor;
    if (auto v = state.vpcs.find(ep.vpc); v != state.vpcs.end()) w.vni = v->second.vni;
    for (const auto& [name, b] : state.backends) {
      if (b.kind == "pod" && b.pod == ep.pod_name && b.vpc == ep.vpc) {
        w.labels = b.labels;
        break;
      }
    }
    out.push_back(std::move(w));
  }
  std::sort(out.begin(), out.end(), [](const MeshWorkload& a, const MeshWorkload& b) { return a.ip < b.ip; });
  return out;
}

std::set<std::string> meshIdentitiesOnNode(const svc::ClusterState& state, const std::string& node,
                                           const std::string& trust_domain) {
  std::set<std::string> out;
  for (const auto& w : buildWorkloads(state, node, trust_domain)) {
    if (w.node == node && w.mesh) out.insert(w.identity);
  }
  return out;
}

const MeshWorkload* findWorkload(const std::vector<MeshWorkload>& workloads, const std::string& ip) {
  auto it = std::lower_bound(workloads.begin(), workloads.end(), ip,
                             [](const MeshWorkload& w, const std::string& key) { return w.ip < key; });
  return it != workloads.end() && it->ip == ip ? &*it : nullptr;
}

}  // namespace offcore::mesh
