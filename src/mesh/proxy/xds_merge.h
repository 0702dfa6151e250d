// A proxy driven by an xDS server: Services, endpoints and routes come from
// the control plane; who each pod is (its node, identity, mesh membership)
// and the security policies (PeerAuthentication, AuthorizationPolicy, which
// the xDS subset does not carry) come from offcore's cluster state. Pure.
#pragma once

#include "mesh/config/snapshot.h"

namespace offcore::mesh {

// xds with the cluster's workloads and security policies; an endpoint that
// is a known pod gets that pod's node, fabric address, mesh flag and
// identity (an endpoint the cluster does not know stays as xDS gave it:
// reached directly, no identity).
Snapshot mergeXdsSnapshot(const Snapshot& xds, const Snapshot& cluster);

}  // namespace offcore::mesh
