// Snapshotter: containerd's snapshot semantics over MetaStore and a
// directory tree, independent of gRPC (service.cc adapts it). Layout under
// root, as containerd's overlayfs snapshotter:
//
//   metadata.db                 MetaStore (SQLite)
//   snapshots/<id>/fs           upper dir of an active snapshot, the layer of a committed one
//   snapshots/<id>/work         overlayfs workdir (active only)
//   snapshots/new-XXXXXX        a snapshot being created; renamed to <id> in the row's transaction
//
// Remote layers come from an optional RemoteSource (see remote_source.h).
// Threading: every method may run concurrently on gRPC worker threads.
#pragma once

#include <functional>
#include <memory>
#include <shared_mutex>
#include <string>
#include <vector>

#include "base/result.h"
#include "snapshotter/disk_usage.h"
#include "snapshotter/metastore.h"
#include "snapshotter/remote_source.h"

namespace offcore {

// containerd.types.Mount.
struct SnapshotMount {
  std::string type;
  std::string source;
  std::vector<std::string> options;
};

inline constexpr const char* kLabelSnapshotRef = "containerd.io/snapshot.ref";

class Snapshotter {
 public:
  // Opens (or creates) root and its metadata; source may be null (plain
  // overlayfs snapshotter).
  static Result<std::unique_ptr<Snapshotter>> open(const std::string& root, std::unique_ptr<RemoteSource> source);

  Result<std::vector<SnapshotMount>> prepare(const std::string& key, const std::string& parent,
                                             const SnapshotLabels& labels);
  Result<std::vector<SnapshotMount>> view(const std::string& key, const std::string& parent,
                                          const SnapshotLabels& labels);
  Result<std::vector<SnapshotMount>> mounts(const std::string& key);
  Status commit(const std::string& name, const std::string& key, const SnapshotLabels& labels);
  Status commitStub(const std::string& name, const std::string& key, const SnapshotRecord& active,
                    const SnapshotLabels& labels, const RemoteLayerRef& ref);
  Status remove(const std::string& key);
  Result<SnapshotInfo> stat(const std::string& key);
  Result<SnapshotInfo> update(const SnapshotInfo& info, const std::vector<std::string>& paths);
  // filters as in ListSnapshotsRequest (OR-ed containerd filter strings).
  Result<std::vector<SnapshotInfo>> list(const std::vector<std::string>& filters);
  Result<DiskUsage> usage(const std::string& key);
  // Removes directories without metadata (a crash between steps) and
  // releases remote layers no snapshot uses.
  Status cleanup();

  const std::string& root() const { return root_; }

 private:
  Snapshotter(std::string root, std::unique_ptr<MetaStore> meta, std::unique_ptr<RemoteSource> source)
      : root_(std::move(root)), meta_(std::move(meta)), source_(std::move(source)) {}

  Result<std::vector<SnapshotMount>> create(SnapshotKind kind, const std::string& key, const std::string& parent,
                                            const SnapshotLabels& labels);
  // The remote-snapshot protocol: AlreadyExists when the target layer is
  // (now) available without unpacking, ok when Prepare should go on normally.
  Status tryRemote(const std::string& parent, const SnapshotLabels& labels);
  // Mounts for chain[0] (active or view) over its ancestors chain[1..].
  Result<std::vector<SnapshotMount>> buildMounts(const std::vector<SnapshotRecord>& chain);
  // Where a committed snapshot's files are: its fs dir, or the remote layer.
  Result<std::string> layerDir(const SnapshotRecord& r);
  static bool isFlat(const std::vector<SnapshotRecord>& chain);
  static bool isUnpackKey(const std::string& key);
  static bool unpacksOverFlat(const std::vector<SnapshotRecord>& chain);

  std::string snapshotDir(int64_t id) const { return root_ + "/snapshots/" + std::to_string(id); }
  std::string upperDir(int64_t id) const { return snapshotDir(id) + "/fs"; }
  std::string workDir(int64_t id) const { return snapshotDir(id) + "/work"; }

  const std::string root_;
  std::unique_ptr<MetaStore> meta_;
  std::unique_ptr<RemoteSource> source_;
  // Creations hold it shared from their temp dir to their committed row;
  // cleanup holds it exclusively, so it never sees a half-made snapshot.
  std::shared_mutex create_mu_;
  bool index_off_ = false;
};

}  // namespace offcore
