// The mesh config applied with `offcore mesh apply`: one JSON document
// beside the svc cluster state, in the same store (mesh_doc.h: a file under
// the cluster directory, or one etcd key), `generation` +1 per change.
// Proxies watch it and the cluster state, and rebuild their Snapshot
// (from_cluster.h) when either moves.
//
// An apply is all-or-nothing and replaces documents by (kind, namespace,
// name). Before anything is written the result is checked against the svc
// cluster state: every VirtualService / DestinationRule host must be a
// Service, every route's subset must be defined by the DestinationRule of
// its host (in the same apply or stored), and a host has at most one
// DestinationRule. Errors name file:line.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/config.h"
#include "base/result.h"
#include "mesh/config/istio_yaml.h"
#include "mesh/config/mesh_doc.h"
#include "svc/cluster_store.h"

namespace offcore::mesh {

struct MeshApplyResult {
  // "virtualservice/web", in document order.
  std::vector<std::string> created, configured, unchanged;
  uint64_t generation = 0;  // of the stored config after the apply
};

// Merges parsed into config after the checks above against cluster; on
// error config is untouched and the message lists every problem, one per
// line. Pure, for tests.
Result<MeshApplyResult> applyToMesh(MeshConfig& config, const ParsedMesh& parsed, const svc::ClusterState& cluster);

// Removes kind/ns/name from config (kind canonical). ENOENT when absent;
// refused while a VirtualService routes to a subset only that
// DestinationRule defines.
Status removeFromMesh(MeshConfig& config, const std::string& kind, const std::string& ns, const std::string& name);

class MeshStore {
 public:
  // The document and the cluster state both in cluster_dir.
  explicit MeshStore(std::string cluster_dir);
  MeshStore(std::shared_ptr<MeshDocStorage> doc, std::shared_ptr<svc::StateStorage> cluster);

  // Nothing applied yet: the empty config at generation 0.
  Result<StoredMesh> load() const { return doc_->load(); }
  // Checked against the svc cluster state of the same store.
  Result<MeshApplyResult> apply(const ParsedMesh& parsed);
  Status remove(const std::string& kind, const std::string& ns, const std::string& name);

  MeshDocStorage& doc() const { return *doc_; }
  const std::shared_ptr<svc::StateStorage>& cluster() const { return cluster_; }
  std::string describe() const { return doc_->describe(); }

 private:
  std::shared_ptr<MeshDocStorage> doc_;
  std::shared_ptr<svc::StateStorage> cluster_;
};

// The store the config names (cluster_store, else cluster_dir), or
// `location` (a directory or etcd://..., as --cluster takes it).
Result<MeshStore> openMeshStore(const Config& config, const std::string& location = "");

}  // namespace offcore::mesh
