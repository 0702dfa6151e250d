// Mounts (what containerd mounts for a container's rootfs) and Cleanup.
#include <dirent.h>

#include <mutex>

#include "base/files.h"
#include "base/log.h"
#include "snapshotter/errors.h"
#include "snapshotter/snapshotter.h"

namespace offcore {

bool Snapshotter::isFlat(const std::vector<SnapshotRecord>& chain) {
  return chain.size() > 1 && chain[0].info.kind != SnapshotKind::kCommitted && chain[1].remote &&
         chain[1].remote->mode == RemoteMode::kFlat && !isUnpackKey(chain[0].info.name);
}

bool Snapshotter::isUnpackKey(const std::string& key) {
  // containerd unpacks into "extract-<unique> <chainID>" (behind its
  // "<namespace>/<txid>/" prefix). Over a flat image such a snapshot only
  // ever receives a stub layer, so it needs a plain directory, not a clone.
  auto slash = key.rfind('/', key.find(' '));
  return key.compare(slash == std::string::npos ? 0 : slash + 1, 8, "extract-") == 0;
}

bool Snapshotter::unpacksOverFlat(const std::vector<SnapshotRecord>& chain) {
  return chain.size() > 1 && chain[1].remote && chain[1].remote->mode == RemoteMode::kFlat &&
         isUnpackKey(chain[0].info.name);
}

Result<std::string> Snapshotter::layerDir(const SnapshotRecord& r) {
  if (!r.remote) return upperDir(r.id);
  if (!source_)
    return makeError("snapshot " + r.info.name +
                     " is a remote layer but the snapshotter runs without a remote source (restart it with --node)");
  auto dir = source_->mountLayer(*r.remote);
  if (!dir.ok()) return dir.error().wrap("mount remote layer " + r.remote->chain_id);
  return dir;
}

Result<std::vector<SnapshotMount>> Snapshotter::mounts(const std::string& key) {
  OC_ASSIGN_OR_RETURN(auto chain, meta_->chain(key));
  return buildMounts(chain);
}

Result<std::vector<SnapshotMount>> Snapshotter::buildMounts(const std::vector<SnapshotRecord>& chain) {
  const auto& s = chain[0];
  if (s.info.kind != SnapshotKind::kActive && s.info.kind != SnapshotKind::kView)
    return snap::failedPrecondition("snapshot " + s.info.name + " is " + kindName(s.info.kind) +
                                    "; only active and view snapshots have mounts");
  bool view = s.info.kind == SnapshotKind::kView;
  std::string rw = view ? "ro" : "rw";
  if (chain.size() == 1 || unpacksOverFlat(chain)) {
    return std::vector<SnapshotMount>{{"bind", upperDir(s.id), {rw, "rbind"}}};
  }
  if (isFlat(chain)) {
    if (!source_) return makeError("snapshot " + s.info.name + " is a flat rootfs but there is no remote source");
    auto dir = source_->prepareFlatRootfs(std::to_string(s.id), *chain[1].remote, view);
    if (!dir.ok()) return dir.error().wrap("flat rootfs for " + s.info.name);
    return std::vector<SnapshotMount>{{"bind", *dir, {rw, "rbind"}}};
  }
  if (view && chain.size() == 2) {
    OC_ASSIGN_OR_RETURN(std::string dir, layerDir(chain[1]));
    return std::vector<SnapshotMount>{{"bind", dir, {"ro", "rbind"}}};
  }
  SnapshotMount m{"overlay", "overlay", {}};
  if (index_off_) m.options.push_back("index=off");
  if (!view) {
    m.options.push_back("workdir=" + workDir(s.id));
    m.options.push_back("upperdir=" + upperDir(s.id));
  }
  std::string lower = "lowerdir=";
  for (size_t i = 1; i < chain.size(); ++i) {
    OC_ASSIGN_OR_RETURN(std::string dir, layerDir(chain[i]));
    lower += (i > 1 ? ":" : "") + dir;
  }
  m.options.push_back(lower);
  return std::vector<SnapshotMount>{m};
}

Status Snapshotter::cleanup() {
  std::unique_lock lock(create_mu_);
  OC_ASSIGN_OR_RETURN(auto ids, meta_->ids());
  std::string dir = root_ + "/snapshots";
  DIR* d = ::opendir(dir.c_str());
  if (!d) return errnoError("cleanup: open " + dir);
  std::vector<std::string> orphans;
  while (struct dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    bool numeric = !name.empty() && name.find_first_not_of("0123456789") == std::string::npos && name.size() < 19;
    if (numeric && ids.count(std::stoll(name))) continue;
    orphans.push_back(dir + "/" + name);
  }
  ::closedir(d);
  for (const auto& o : orphans) {
    spdlog::info("cleanup: removing {} (no metadata)", o);
    auto st = removeTree(o);
    if (!st.ok()) spdlog::warn("cleanup: {}", st.error().message);
  }
  if (!source_) return okStatus();
  OC_ASSIGN_OR_RETURN(auto unused, meta_->unusedRemoteLayers());
  for (const auto& ref : unused) {
    auto st = source_->releaseLayer(ref);
    if (!st.ok()) {
      spdlog::warn("cleanup: release remote layer {}: {}", ref.chain_id, st.error().message);
      continue;
    }
    spdlog::info("cleanup: released remote layer {}", ref.chain_id);
    OC_TRY(meta_->forgetRemoteLayer(ref.chain_id));
  }
  return okStatus();
}

}  // namespace offcore
