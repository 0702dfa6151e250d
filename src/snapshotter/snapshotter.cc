#include "snapshotter/snapshotter.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <mutex>

#include "base/files.h"
#include "base/log.h"
#include "snapshotter/errors.h"
#include "snapshotter/filter.h"

namespace offcore {

Result<std::unique_ptr<Snapshotter>> Snapshotter::open(const std::string& root, std::unique_ptr<RemoteSource> source) {
  OC_TRY(makePrivateDir(root));
  OC_TRY(makePrivateDir(root + "/snapshots"));
  OC_ASSIGN_OR_RETURN(auto meta, MetaStore::open(root + "/metadata.db"));
  std::unique_ptr<Snapshotter> s(new Snapshotter(root, std::move(meta), std::move(source)));
  // As containerd's overlay snapshotter: with index support compiled in,
  // turn it off, or reusing a lower dir under a new upper fails to mount.
  s->index_off_ = pathExists("/sys/module/overlay/parameters/index");
  return s;
}

Result<std::vector<SnapshotMount>> Snapshotter::prepare(const std::string& key, const std::string& parent,
                                                        const SnapshotLabels& labels) {
  if (source_ && labels.count(kLabelSnapshotRef)) OC_TRY(tryRemote(parent, labels));
  return create(SnapshotKind::kActive, key, parent, labels);
}

Result<std::vector<SnapshotMount>> Snapshotter::view(const std::string& key, const std::string& parent,
                                                     const SnapshotLabels& labels) {
  return create(SnapshotKind::kView, key, parent, labels);
}

Status Snapshotter::tryRemote(const std::string& parent, const SnapshotLabels& labels) {
  const std::string& target = labels.at(kLabelSnapshotRef);
  std::string exists = "target snapshot \"" + target + "\" already exists";
  auto existing = meta_->get(target);
  if (existing.ok() && existing->info.kind == SnapshotKind::kCommitted) return snap::alreadyExists(exists);
  auto ref = source_->lookup(target, labels);
  if (!ref.ok()) {
    spdlog::warn("remote lookup of {} failed, unpacking it instead: {}", target, ref.error().message);
    return okStatus();
  }
  if (!*ref) {
    spdlog::info("remote lookup of {}: not converted, unpacking it", target);
    return okStatus();
  }
  RemoteLayerRef r = **ref;
  if (r.chain_id.empty()) r.chain_id = target;
  std::shared_lock lock(create_mu_);
  auto row = meta_->createRemote(target, parent, labels, r);
  if (!row.ok()) {
    if (row.error().code < 0) return row.error();  // AlreadyExists, a bad parent: the caller's business
    spdlog::warn("recording remote snapshot {} failed, unpacking it instead: {}", target, row.error().message);
    return okStatus();
  }
  spdlog::info("remote snapshot {} (id {}, {} mode, handle {}) on parent \"{}\"", target, row->id,
               r.mode == RemoteMode::kFlat ? "flat" : "layered", r.handle, parent);
  std::optional<RemoteLayerRef> parent_ref;
  if (!parent.empty()) {
    if (auto p = meta_->get(parent); p.ok()) parent_ref = p->remote;
  }
  source_->warmLayer(r, parent_ref);
  return snap::alreadyExists(exists);
}

Result<std::vector<SnapshotMount>> Snapshotter::create(SnapshotKind kind, const std::string& key,
                                                       const std::string& parent, const SnapshotLabels& labels) {
  std::shared_lock lock(create_mu_);
  std::vector<SnapshotRecord> chain;
  if (!parent.empty()) {
    auto pc = meta_->chain(parent);
    if (!pc.ok())
      return pc.error().code == snap::kNotFound ? snap::notFound("parent snapshot " + parent + " does not exist")
                                                : pc.error();
    chain = std::move(*pc);
  }
  std::string tmp = root_ + "/snapshots/new-XXXXXX";
  if (!::mkdtemp(tmp.data())) return errnoError("create a directory under " + root_ + "/snapshots");
  auto fail = [&](Error e) -> Error {
    (void)removeTree(tmp);
    return e;
  };
  if (::mkdir((tmp + "/fs").c_str(), 0755) != 0) return fail(errnoError("mkdir " + tmp + "/fs"));
  if (kind == SnapshotKind::kActive && ::mkdir((tmp + "/work").c_str(), 0711) != 0)
    return fail(errnoError("mkdir " + tmp + "/work"));
  // overlayfs shows the upper dir as "/": give it the parent's owner, as
  // containerd's overlay snapshotter does.
  bool flat_parent = !chain.empty() && chain[0].remote && chain[0].remote->mode == RemoteMode::kFlat;
  if (!chain.empty() && chain[0].info.kind == SnapshotKind::kCommitted && !flat_parent) {
    auto dir = layerDir(chain[0]);
    if (!dir.ok()) return fail(dir.error().wrap("parent " + parent));
    struct stat st;
    if (::stat(dir->c_str(), &st) != 0) return fail(errnoError("stat parent " + *dir));
    if (::lchown((tmp + "/fs").c_str(), st.st_uid, st.st_gid) != 0) return fail(errnoError("chown " + tmp + "/fs"));
  }
  auto row = meta_->create(kind, key, parent, labels, [&](const SnapshotRecord& r) -> Status {
    std::string dst = snapshotDir(r.id);
    // A directory here was left by a crash whose row was rolled back.
    if (pathExists(dst)) OC_TRY(removeTree(dst));
    if (::rename(tmp.c_str(), dst.c_str()) != 0) return errnoError("rename " + tmp + " to " + dst);
    return okStatus();
  });
  if (!row.ok()) return fail(row.error());
  lock.unlock();
  chain.insert(chain.begin(), *row);
  auto mounts = buildMounts(chain);
  if (!mounts.ok()) {
    // Leave nothing behind that containerd does not know about.
    if (isFlat(chain)) (void)source_->removeFlatRootfs(std::to_string(row->id));
    (void)meta_->remove(key);
    (void)removeTree(snapshotDir(row->id));
  }
  return mounts;
}

Status Snapshotter::commit(const std::string& name, const std::string& key, const SnapshotLabels& labels) {
  OC_ASSIGN_OR_RETURN(auto chain, meta_->chain(key));
  const auto& s = chain[0];
  if (source_ && s.info.kind == SnapshotKind::kActive) {
    auto stub = source_->adoptStub(upperDir(s.id), name);
    if (!stub.ok()) return stub.error();
    if (*stub) return commitStub(name, key, s, labels, **stub);
  }
  if (isFlat(chain) || unpacksOverFlat(chain))
    return snap::failedPrecondition("snapshot " + key +
                                    " is a flat root filesystem over a remote image and cannot be committed"
                                    " (run the snapshotter with --mode layered to build on remote images)");
  DiskUsage du;
  if (s.info.kind == SnapshotKind::kActive) {
    OC_ASSIGN_OR_RETURN(du, diskUsage(upperDir(s.id)));
  }
  OC_ASSIGN_OR_RETURN(auto row, meta_->commit(name, key, labels, du.size, du.inodes));
  spdlog::info("committed {} as {} (id {}, {} bytes, {} inodes)", key, name, row.id, du.size, du.inodes);
  return okStatus();
}

// The active snapshot held only a lazy image's stub: it becomes a committed
// remote snapshot in one transaction (a crash leaves either the active
// snapshot or the remote one). Its directory, holding only the marker file,
// goes with the row on Remove.
Status Snapshotter::commitStub(const std::string& name, const std::string& key, const SnapshotRecord& active,
                               const SnapshotLabels& labels, const RemoteLayerRef& ref) {
  OC_ASSIGN_OR_RETURN(auto row, meta_->commit(name, key, labels, 0, 0, ref));
  spdlog::info("committed stub {} as remote snapshot {} (id {}, chain {})", key, name, row.id, ref.chain_id);
  std::optional<RemoteLayerRef> parent_ref;
  if (auto chain = meta_->chain(name); chain.ok() && chain->size() > 1) parent_ref = (*chain)[1].remote;
  source_->warmLayer(ref, parent_ref);
  return okStatus();
}

Status Snapshotter::remove(const std::string& key) {
  OC_ASSIGN_OR_RETURN(auto chain, meta_->chain(key));
  if (isFlat(chain)) {
    if (!source_) return makeError("snapshot " + key + " is a flat rootfs but the snapshotter has no remote source");
    OC_TRY(source_->removeFlatRootfs(std::to_string(chain[0].id)));
  }
  OC_ASSIGN_OR_RETURN(auto row, meta_->remove(key));
  // After the row is gone; a crash in between leaves a directory Cleanup removes.
  auto st = removeTree(snapshotDir(row.id));
  if (!st.ok()) spdlog::warn("remove {}: {} (Cleanup will retry)", key, st.error().message);
  return okStatus();
}

Result<SnapshotInfo> Snapshotter::stat(const std::string& key) {
  OC_ASSIGN_OR_RETURN(auto row, meta_->get(key));
  return row.info;
}

Result<SnapshotInfo> Snapshotter::update(const SnapshotInfo& info, const std::vector<std::string>& paths) {
  return meta_->update(info, paths);
}

Result<std::vector<SnapshotInfo>> Snapshotter::list(const std::vector<std::string>& filters) {
  OC_ASSIGN_OR_RETURN(auto filter, SnapshotFilter::parse(filters));
  OC_ASSIGN_OR_RETURN(auto rows, meta_->list());
  std::vector<SnapshotInfo> out;
  for (auto& r : rows)
    if (filter.matches(r.info)) out.push_back(std::move(r.info));
  return out;
}

Result<DiskUsage> Snapshotter::usage(const std::string& key) {
  OC_ASSIGN_OR_RETURN(auto chain, meta_->chain(key));
  const auto& s = chain[0];
  if (s.remote || isFlat(chain)) return DiskUsage{};  // lives in the remote source
  if (s.info.kind == SnapshotKind::kActive) return diskUsage(upperDir(s.id));
  return DiskUsage{s.size, s.inodes};  // recorded at Commit; 0 for a view
}

}  // namespace offcore
