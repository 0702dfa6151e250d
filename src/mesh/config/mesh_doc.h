// Where the applied mesh config lives: one document,
// {"generation": N, "config": {...}}, in a file under the cluster directory
// (<cluster_dir>/mesh/config.json, 0600, under a flock) or in one etcd key
// (/offcore/mesh/v1/config, written by a transaction that compares the
// key's revision), whichever holds the svc cluster state. MeshStore
// (mesh_store.h) holds the rules; a MeshDocStorage only makes a change
// atomic against every other writer, and says when the document changed.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "base/event_loop.h"
#include "base/result.h"
#include "mesh/config/istio_yaml.h"
#include "svc/state_storage.h"

namespace offcore::kv {
class KvClient;
}

namespace offcore::mesh {

struct StoredMesh {
  uint64_t generation = 0;
  MeshConfig config;
};

class MeshDocStorage {
 public:
  virtual ~MeshDocStorage() = default;

  // No document yet: the empty config at generation 0.
  virtual Result<StoredMesh> load() const = 0;
  // fn on the stored config; written with generation + 1 only when fn
  // changed it, atomically: a change that raced another runs fn again on the
  // winner's config, so no update is lost. *generation: the document's after
  // the call. fn may run more than once.
  using Change = std::function<Status(MeshConfig&)>;
  virtual Status modify(const Change& fn, uint64_t* generation) = 0;
  // changed() on loop's thread after the document changed (several changes
  // may come as one call).
  virtual Result<std::unique_ptr<svc::StoreWatch>> watch(EventLoop& loop, std::function<void()> changed) = 0;
  // For messages: the file, or etcd://members.
  virtual std::string describe() const = 0;
};

std::shared_ptr<MeshDocStorage> makeMeshDirDoc(std::string cluster_dir);
std::shared_ptr<MeshDocStorage> makeMeshEtcdDoc(std::shared_ptr<kv::KvClient> kv);

// The document's text, and back (origin names it in errors).
std::string storedMeshText(const StoredMesh& m);
Result<StoredMesh> parseStoredMesh(const std::string& text, const std::string& origin);

}  // namespace offcore::mesh
