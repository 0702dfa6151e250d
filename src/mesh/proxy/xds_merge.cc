#include "mesh/proxy/xds_merge.h"

#include "mesh/proxy/workloads.h"

namespace offcore::mesh {

Snapshot mergeXdsSnapshot(const Snapshot& xds, const Snapshot& cluster) {
  Snapshot out = xds;
  out.workloads = cluster.workloads;
  out.trust_domain = cluster.trust_domain;
  out.config.peer_authentications = cluster.config.peer_authentications;
  out.config.authorization_policies = cluster.config.authorization_policies;
  for (auto& service : out.services) {
    for (auto& e : service.endpoints) {
      const MeshWorkload* w = findWorkload(out.workloads, e.ip);
      if (!w) continue;
      e.node = w->node;
      e.node_ip = w->node_ip;
      e.mesh = w->mesh;
      e.identity = w->identity;
    }
  }
  return out;
}

}  // namespace offcore::mesh
