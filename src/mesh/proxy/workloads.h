// The cluster's pods as the node proxy sees them (who a source address is,
// how to reach a destination address), from offcore's cluster state.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "mesh/config/snapshot.h"
#include "svc/cluster_store.h"

namespace offcore::mesh {

// Every endpoint of the state, sorted by address; the representor is kept
// for `self_node`'s pods only; labels come from the pod's Backend (kind pod,
// same VPC), if one names it.
std::vector<MeshWorkload> buildWorkloads(const svc::ClusterState& state, const std::string& self_node,
                                         const std::string& trust_domain);

// The SPIFFE IDs of the mesh pods scheduled on `node`: the identities its
// proxy may hold, and the only ones the keeper's CA signs for it.
std::set<std::string> meshIdentitiesOnNode(const svc::ClusterState& state, const std::string& node,
                                           const std::string& trust_domain);

// The workload with address `ip` (nullptr if none). `workloads` sorted by ip.
const MeshWorkload* findWorkload(const std::vector<MeshWorkload>& workloads, const std::string& ip);

}  // namespace offcore::mesh
