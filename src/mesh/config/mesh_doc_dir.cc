// The mesh document in the cluster directory: <cluster_dir>/mesh/config.json,
// replaced atomically under an exclusive flock on <cluster_dir>/mesh/.lock
// (readers take it shared), the same scheme as the svc directory store.
#include "base/dir_watch.h"
#include "base/files.h"
#include "base/json.h"
#include "base/shared_file_lock.h"
#include "mesh/config/mesh_doc.h"

namespace offcore::mesh {

std::string storedMeshText(const StoredMesh& m) {
  nlohmann::json doc = {{"generation", m.generation}, {"config", toJson(m.config)}};
  return dumpJson(doc, 2) + "\n";
}

Result<StoredMesh> parseStoredMesh(const std::string& text, const std::string& origin) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("generation") || !j["generation"].is_number_unsigned())
    return makeError(origin + ": not a mesh config document (damaged? move it away and re-apply your YAML)");
  StoredMesh out;
  out.generation = j["generation"].get<uint64_t>();
  OC_ASSIGN_OR_RETURN(out.config,
                      meshConfigFromJson(j.contains("config") ? j["config"] : nlohmann::json(), origin + ": config"));
  return out;
}

namespace {

class MeshDirDoc final : public MeshDocStorage {
 public:
  explicit MeshDirDoc(std::string cluster_dir) : cluster_dir_(std::move(cluster_dir)) {}

  Result<StoredMesh> load() const override {
    SharedFileLock lock(dir() + "/.lock");
    return read();
  }

  Status modify(const Change& fn, uint64_t* generation) override {
    auto made = makePrivateDir(cluster_dir_);
    if (made.ok()) made = makePrivateDir(dir());
    if (!made.ok()) return made.error().wrap("mesh store (run as root or pass --cluster-dir)");
    auto lock = FileLock::acquire(dir() + "/.lock");
    if (!lock.ok()) return lock.error().wrap("mesh store (run as root or pass --cluster-dir)");
    OC_ASSIGN_OR_RETURN(StoredMesh before, read());
    MeshConfig after = before.config;
    OC_TRY(fn(after));
    if (generation) *generation = before.generation;
    if (after == before.config) return okStatus();
    OC_TRY(writeFileAtomic(file(), storedMeshText({before.generation + 1, after}), 0600));
    if (generation) *generation = before.generation + 1;
    return okStatus();
  }

  Result<std::unique_ptr<svc::StoreWatch>> watch(EventLoop& loop, std::function<void()> changed) override {
    OC_TRY(makeDirs(dir()));
    OC_ASSIGN_OR_RETURN(auto w, DirWatch::start(loop, {dir()}, std::move(changed)));
    return std::unique_ptr<svc::StoreWatch>(std::make_unique<svc::HeldWatch<DirWatch>>(std::move(w)));
  }

  std::string describe() const override { return file(); }

 private:
  std::string dir() const { return cluster_dir_ + "/mesh"; }
  std::string file() const { return dir() + "/config.json"; }

  Result<StoredMesh> read() const {
    auto text = readFile(file());
    if (!text.ok()) {
      if (text.error().code == ENOENT) return StoredMesh{};
      return text.error();
    }
    return parseStoredMesh(*text, file());
  }

  std::string cluster_dir_;
};

}  // namespace

std::shared_ptr<MeshDocStorage> makeMeshDirDoc(std::string cluster_dir) {
  return std::make_shared<MeshDirDoc>(std::move(cluster_dir));
}

}  // namespace offcore::mesh
