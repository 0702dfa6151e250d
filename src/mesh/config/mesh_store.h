// The mesh config applied with `offcore mesh apply`: one JSON document,
// <cluster_dir>/mesh/config.json (0600), replaced atomically under an
// exclusive flock on <cluster_dir>/mesh/.lock for every read-modify-write
// (readers take it shared), `generation` +1 per change - the same scheme as
// the svc ClusterStore next to it. Proxies watch the directory and rebuild
// their Snapshot (from_cluster.h) when the generation moves.
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

#include "base/result.h"
#include "mesh/config/istio_yaml.h"
#include "svc/cluster_store.h"

namespace offcore::mesh {

struct StoredMesh {
  uint64_t generation = 0;
  MeshConfig config;
};

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
  explicit MeshStore(std::string cluster_dir);

  // A missing file is the empty config at generation 0.
  Result<StoredMesh> load() const;
  // Reads the svc cluster state of the same cluster_dir for the checks.
  Result<MeshApplyResult> apply(const ParsedMesh& parsed);
  Status remove(const std::string& kind, const std::string& ns, const std::string& name);

  std::string dir() const { return cluster_dir_ + "/mesh"; }
  std::string configFile() const { return dir() + "/config.json"; }

 private:
  template <typename Fn>
  Status modify(Fn&& fn, uint64_t* generation);
  Result<StoredMesh> read() const;

  std::string cluster_dir_;
};

}  // namespace offcore::mesh
