#include "mesh/proxy/peer_auth.h"

namespace offcore::mesh {

namespace {

bool selects(const Labels& selector, const Labels& labels) {
  for (const auto& [k, v] : selector) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  return true;
}

// The mode a policy gives `port`, kUnset if it says nothing.
MtlsMode modeOf(const PeerAuthentication& pa, uint16_t port) {
  if (auto it = pa.port_level.find(port); it != pa.port_level.end() && it->second != MtlsMode::kUnset) {
    return it->second;
  }
  return pa.mode;
}

}  // namespace

MtlsMode mtlsModeFor(const MeshConfig& config, const MeshWorkload& w, uint16_t port) {
  const PeerAuthentication* workload = nullptr;
  const PeerAuthentication* ns_wide = nullptr;
  const PeerAuthentication* mesh_wide = nullptr;
  for (const auto& pa : config.peer_authentications) {
    if (pa.ns == w.ns && !pa.selector.empty() && selects(pa.selector, w.labels)) {
      if (!workload) workload = &pa;
    } else if (pa.ns == w.ns && pa.selector.empty()) {
      if (!ns_wide) ns_wide = &pa;
    } else if (pa.ns == kMeshRootNamespace && pa.selector.empty()) {
      if (!mesh_wide) mesh_wide = &pa;
    }
  }
  for (const PeerAuthentication* pa : {workload, ns_wide, mesh_wide}) {
    if (!pa) continue;
    MtlsMode m = modeOf(*pa, port);
    if (m != MtlsMode::kUnset) return m;
  }
  return MtlsMode::kPermissive;
}

const char* toString(MtlsMode mode) {
  switch (mode) {
    case MtlsMode::kStrict: return "STRICT";
    case MtlsMode::kPermissive: return "PERMISSIVE";
    case MtlsMode::kDisable: return "DISABLE";
    case MtlsMode::kUnset: break;
  }
  return "UNSET";
}

}  // namespace offcore::mesh
