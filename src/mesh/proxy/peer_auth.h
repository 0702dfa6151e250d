// PeerAuthentication: which mTLS mode applies to a workload's port, the way
// Istio resolves it: a policy whose selector matches the workload (in its
// namespace) beats a namespace-wide one (no selector), which beats a
// mesh-wide one (no selector, in the root namespace); a port-level mode
// beats the policy's own. Unset everywhere = PERMISSIVE.
#pragma once

#include <cstdint>
#include <string>

#include "mesh/config/model.h"
#include "mesh/config/snapshot.h"

namespace offcore::mesh {

MtlsMode mtlsModeFor(const MeshConfig& config, const MeshWorkload& workload, uint16_t port);

const char* toString(MtlsMode mode);

}  // namespace offcore::mesh
