// MetaStore: the snapshotter's metadata in SQLite (WAL, synchronous=FULL).
// Every change is one transaction, so a SIGKILL at any point leaves either
// the old or the new state. Semantics follow containerd's
// snapshots/storage (bolt.go): unique keys, committed parents, stable ids
// that name the snapshot's directory, no removal of a parent.
//
// Threading: one connection behind a mutex; every method is safe to call
// from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/result.h"
#include "snapshotter/remote_source.h"

struct sqlite3;

namespace offcore {

// Values as in containerd's snapshots.v1.Kind.
enum class SnapshotKind { kUnknown = 0, kView = 1, kActive = 2, kCommitted = 3 };
const char* kindName(SnapshotKind kind);  // "view", "active", "committed" (filter spelling)

// What Stat/List/Update expose (containerd's snapshots.Info).
struct SnapshotInfo {
  std::string name;
  std::string parent;
  SnapshotKind kind = SnapshotKind::kUnknown;
  SnapshotLabels labels;
  int64_t created_ns = 0;  // UTC, nanoseconds since the epoch
  int64_t updated_ns = 0;
};

struct SnapshotRecord {
  int64_t id = 0;         // names snapshots/<id>; kept across Commit
  int64_t parent_id = 0;  // 0: no parent
  SnapshotInfo info;
  int64_t size = 0;  // usage recorded at Commit
  int64_t inodes = 0;
  std::optional<RemoteLayerRef> remote;  // committed snapshots from a RemoteSource
};

class MetaStore {
 public:
  static Result<std::unique_ptr<MetaStore>> open(const std::string& db_path);
  ~MetaStore();
  MetaStore(const MetaStore&) = delete;
  MetaStore& operator=(const MetaStore&) = delete;

  Result<SnapshotRecord> get(const std::string& key);
  // The snapshot followed by its ancestors, nearest parent first.
  Result<std::vector<SnapshotRecord>> chain(const std::string& key);
  Result<std::vector<SnapshotRecord>> list();
  Result<std::set<int64_t>> ids();

  // Runs inside the transaction, after the row exists: a failure rolls the
  // row back. Used to put the snapshot's directory in place atomically.
  using InTxn = std::function<Status(const SnapshotRecord&)>;

  // An ACTIVE or VIEW snapshot. AlreadyExists for a used key, NotFound for
  // a missing parent, InvalidArgument for an uncommitted one.
  Result<SnapshotRecord> create(SnapshotKind kind, const std::string& key, const std::string& parent,
                                const SnapshotLabels& labels, const InTxn& in_txn = {});
  // A COMMITTED snapshot whose content is a remote layer; also records the
  // layer so Cleanup can release it once unused.
  Result<SnapshotRecord> createRemote(const std::string& name, const std::string& parent, const SnapshotLabels& labels,
                                      const RemoteLayerRef& ref);
  // ACTIVE `key` becomes COMMITTED `name` with the same id; labels are the
  // commit's (containerd does not carry the active ones over). With
  // `remote`, the committed snapshot stands for that remote layer (a lazy
  // image's stub layer was applied into it), recorded as by createRemote.
  Result<SnapshotRecord> commit(const std::string& name, const std::string& key, const SnapshotLabels& labels,
                                int64_t size, int64_t inodes,
                                const std::optional<RemoteLayerRef>& remote = std::nullopt);
  // FailedPrecondition when the snapshot has children. Returns the row.
  Result<SnapshotRecord> remove(const std::string& key);
  // Updates labels per field paths ("labels", "labels.KEY"; none = all).
  Result<SnapshotInfo> update(const SnapshotInfo& info, const std::vector<std::string>& paths);

  // Remote layers no snapshot refers to any more.
  Result<std::vector<RemoteLayerRef>> unusedRemoteLayers();
  // Drops a layer's record, unless a snapshot refers to it again.
  Status forgetRemoteLayer(const std::string& chain_id);

 private:
  explicit MetaStore(sqlite3* db) : db_(db) {}
  // Runs fn in BEGIN IMMEDIATE ... COMMIT; rolls back on any error.
  template <typename T>
  Result<T> inTransaction(const std::function<Result<T>()>& fn);

  std::mutex mu_;
  sqlite3* db_;
};

}  // namespace offcore
