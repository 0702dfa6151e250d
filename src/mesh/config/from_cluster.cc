#include "mesh/config/from_cluster.h"

#include "svc/resolve.h"
#include "svc/service_programmer.h"

namespace offcore::mesh {

Membership endpointMembership(const svc::Endpoint& e) { return Membership{e.mesh, e.ns, e.service_account}; }

std::string spiffeId(const std::string& trust_domain, const std::string& ns, const std::string& sa) {
  return "spiffe://" + trust_domain + "/ns/" + ns + "/sa/" + sa;
}

Snapshot buildSnapshot(const svc::ClusterState& cluster, const std::map<std::string, svc::NodeHealth>& health,
                       const MeshConfig& config, const std::string& trust_domain, const MembershipFn& membership) {
  Snapshot snap;
  snap.version = cluster.generation;
  snap.config = config;
  snap.trust_domain = trust_domain;
  for (const auto& [name, service] : cluster.services) {
    MeshService ms;
    ms.name = name;
    ms.vip = service.cluster_ip;
    for (const auto& p : service.ports) {
      if (p.protocol != "TCP") continue;  // the proxy carries TCP only
      ms.ports.push_back(MeshServicePort{p.name, p.port, p.target_port, p.app_protocol});
    }
    for (const auto& r : svc::resolveService(cluster, service)) {
      MeshEndpoint e;
      e.ip = r.ip;
      e.node = r.node;
      if (auto n = cluster.nodes.find(r.node); n != cluster.nodes.end()) e.node_ip = n->second.fabric_ip;
      if (auto b = cluster.backends.find(r.name); b != cluster.backends.end()) e.labels = b->second.labels;
      e.healthy = svc::backendHealthy(health, r.name);
      if (auto ep = cluster.endpoints.find(r.endpoint_id); ep != cluster.endpoints.end()) {
        Membership m = membership(ep->second);
        e.mesh = m.mesh;
        if (m.mesh) e.identity = spiffeId(trust_domain, m.ns, m.service_account);
      }
      ms.endpoints.push_back(std::move(e));
    }
    snap.services.push_back(std::move(ms));
  }
  return snap;
}

}  // namespace offcore::mesh
