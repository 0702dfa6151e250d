// The Snapshot a node proxy runs with, built from offcore's own state: the
// svc cluster state (Services, Backends, Endpoints, Nodes), the health the
// agents report, and the applied mesh config (mesh_store.h). Pure.
#pragma once

#include <functional>
#include <map>
#include <string>

#include "mesh/config/snapshot.h"
#include "svc/cluster_store.h"

namespace offcore::mesh {

// Whether a pod endpoint is in the mesh, and its namespace and service
// account (the SPIFFE identity spiffe://<td>/ns/<ns>/sa/<sa>).
struct Membership {
  bool mesh = false;
  std::string ns = "default";
  std::string service_account = "default";
};

// What the svc Endpoint says about it (set by the CNI's mesh switch). The one
// place to read those fields.
Membership endpointMembership(const svc::Endpoint& e);

using MembershipFn = std::function<Membership(const svc::Endpoint&)>;

// One MeshService per Service: VIP, TCP ports (with appProtocol), and the
// endpoints svc/resolve.h resolves it to - the Backend's labels (subsets
// select on them), its node and that node's fabric address, healthy unless
// a node reports its probe failing, and for mesh pods the SPIFFE identity.
// Sorted by name; endpoints in resolve order.
Snapshot buildSnapshot(const svc::ClusterState& cluster, const std::map<std::string, svc::NodeHealth>& health,
                       const MeshConfig& config, const std::string& trust_domain = "cluster.local",
                       const MembershipFn& membership = endpointMembership);

// spiffe://<td>/ns/<ns>/sa/<sa>
std::string spiffeId(const std::string& trust_domain, const std::string& ns, const std::string& sa);

}  // namespace offcore::mesh
