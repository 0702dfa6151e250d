#include "snapshotter/metastore.h"

#include <sqlite3.h>

#include "snapshotter/errors.h"
#include "snapshotter/metastore_rows.h"
#include "snapshotter/sqlite_stmt.h"

namespace offcore {

using namespace metarows;

namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS snapshots (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  key TEXT NOT NULL UNIQUE,
  parent_id INTEGER REFERENCES snapshots(id),
  kind INTEGER NOT NULL,
  labels TEXT NOT NULL,
  created_ns INTEGER NOT NULL,
  updated_ns INTEGER NOT NULL,
  size INTEGER NOT NULL DEFAULT 0,
  inodes INTEGER NOT NULL DEFAULT 0,
  remote_chain_id TEXT,
  remote_mode TEXT,
  remote_handle TEXT);
CREATE INDEX IF NOT EXISTS snapshots_parent ON snapshots(parent_id);
CREATE TABLE IF NOT EXISTS remote_layers (
  chain_id TEXT PRIMARY KEY,
  mode TEXT NOT NULL,
  handle TEXT NOT NULL);
)sql";

Result<SnapshotRecord> mustFind(sqlite3* db, const std::string& key) {
  OC_ASSIGN_OR_RETURN(auto row, findByKey(db, key));
  if (!row) return snap::notFound("snapshot " + key + " does not exist");
  return std::move(*row);
}

// containerd: a parent must exist (NotFound) and be committed (InvalidArgument).
Result<SnapshotRecord> committedParent(sqlite3* db, const std::string& parent) {
  OC_ASSIGN_OR_RETURN(auto row, findByKey(db, parent));
  if (!row) return snap::notFound("parent snapshot " + parent + " does not exist");
  if (row->info.kind != SnapshotKind::kCommitted)
    return snap::invalidArgument("parent " + parent + " is not a committed snapshot");
  return std::move(*row);
}

// A row to insert: the parent must be committed and the name free.
Result<SnapshotRecord> newRecord(sqlite3* db, const std::string& name, const std::string& parent, SnapshotKind kind,
                                 const SnapshotLabels& labels, const std::string& exists_message) {
  SnapshotRecord r;
  if (!parent.empty()) {
    OC_ASSIGN_OR_RETURN(auto p, committedParent(db, parent));
    r.parent_id = p.id;
  }
  OC_ASSIGN_OR_RETURN(auto existing, findByKey(db, name));
  if (existing) return snap::alreadyExists(exists_message);
  r.info.name = name;
  r.info.kind = kind;
  r.info.labels = labels;
  r.info.created_ns = r.info.updated_ns = nowNs();
  return r;
}

// remote_layers: every layer a source gave us, until Cleanup releases it.
Status rememberLayer(sqlite3* db, const RemoteLayerRef& ref) {
  OC_ASSIGN_OR_RETURN(Stmt s, Stmt::prepare(db, "INSERT OR REPLACE INTO remote_layers VALUES (?1, ?2, ?3)"));
  s.bind(1, ref.chain_id).bind(2, std::string(modeName(ref.mode))).bind(3, ref.handle);
  return s.run();
}

Status recordRemote(sqlite3* db, int64_t id, const RemoteLayerRef& ref) {
  OC_ASSIGN_OR_RETURN(Stmt s, Stmt::prepare(db,
                                            "UPDATE snapshots SET remote_chain_id = ?1, remote_mode = ?2,"
                                            " remote_handle = ?3 WHERE id = ?4"));
  s.bind(1, ref.chain_id).bind(2, std::string(modeName(ref.mode))).bind(3, ref.handle).bind(4, id);
  OC_TRY(s.run());
  return rememberLayer(db, ref);
}

}  // namespace

const char* kindName(SnapshotKind kind) {
  switch (kind) {
    case SnapshotKind::kView: return "view";
    case SnapshotKind::kActive: return "active";
    case SnapshotKind::kCommitted: return "committed";
    default: return "unknown";
  }
}

Result<std::unique_ptr<MetaStore>> MetaStore::open(const std::string& db_path) {
  sqlite3* db = nullptr;
  int rc =
      sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return makeError("metadata: cannot open " + db_path + ": " + msg);
  }
  std::unique_ptr<MetaStore> store(new MetaStore(db));
  sqlite3_busy_timeout(db, 5000);
  // WAL + FULL: a committed transaction survives power loss, and a crash in
  // the middle of one leaves the previous state.
  OC_TRY(exec(db, "PRAGMA journal_mode=WAL"));
  OC_TRY(exec(db, "PRAGMA synchronous=FULL"));
  OC_TRY(exec(db, "PRAGMA foreign_keys=ON"));
  OC_TRY(exec(db, kSchema));
  return store;
}

MetaStore::~MetaStore() { sqlite3_close(db_); }

template <typename T>
Result<T> MetaStore::inTransaction(const std::function<Result<T>()>& fn) {
  OC_TRY(exec(db_, "BEGIN IMMEDIATE"));
  Result<T> r = fn();
  if (!r.ok()) {
    (void)exec(db_, "ROLLBACK");
    return r;
  }
  Status c = exec(db_, "COMMIT");
  if (!c.ok()) {
    (void)exec(db_, "ROLLBACK");
    return c.error();
  }
  return r;
}

Result<SnapshotRecord> MetaStore::get(const std::string& key) {
  std::lock_guard lock(mu_);
  return mustFind(db_, key);
}

Result<std::vector<SnapshotRecord>> MetaStore::chain(const std::string& key) {
  std::lock_guard lock(mu_);
  std::vector<SnapshotRecord> out;
  OC_ASSIGN_OR_RETURN(auto s, mustFind(db_, key));
  out.push_back(std::move(s));
  while (out.back().parent_id != 0) {
    OC_ASSIGN_OR_RETURN(auto p, findById(db_, out.back().parent_id));
    if (!p) return makeError("metadata: parent of " + out.back().info.name + " is missing");
    out.push_back(std::move(*p));
    if (out.size() > 4096) return makeError("metadata: parent chain of " + key + " loops");
  }
  return out;
}

Result<std::vector<SnapshotRecord>> MetaStore::list() {
  std::lock_guard lock(mu_);
  return all(db_);
}

Result<std::set<int64_t>> MetaStore::ids() {
  std::lock_guard lock(mu_);
  OC_ASSIGN_OR_RETURN(Stmt s, Stmt::prepare(db_, "SELECT id FROM snapshots"));
  std::set<int64_t> out;
  for (;;) {
    OC_ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    out.insert(s.i64(0));
  }
  return out;
}

Result<SnapshotRecord> MetaStore::create(SnapshotKind kind, const std::string& key, const std::string& parent,
                                         const SnapshotLabels& labels, const InTxn& in_txn) {
  if (kind != SnapshotKind::kActive && kind != SnapshotKind::kView)
    return snap::invalidArgument("only active or view snapshots can be created");
  if (key.empty()) return snap::invalidArgument("snapshot key is empty");
  std::lock_guard lock(mu_);
  return inTransaction<SnapshotRecord>([&]() -> Result<SnapshotRecord> {
    OC_ASSIGN_OR_RETURN(SnapshotRecord r,
                        newRecord(db_, key, parent, kind, labels, "snapshot " + key + " already exists"));
    OC_ASSIGN_OR_RETURN(auto row, insert(db_, r));
    if (in_txn) OC_TRY(in_txn(row));
    return row;
  });
}

Result<SnapshotRecord> MetaStore::createRemote(const std::string& name, const std::string& parent,
                                               const SnapshotLabels& labels, const RemoteLayerRef& ref) {
  std::lock_guard lock(mu_);
  return inTransaction<SnapshotRecord>([&]() -> Result<SnapshotRecord> {
    OC_ASSIGN_OR_RETURN(SnapshotRecord r, newRecord(db_, name, parent, SnapshotKind::kCommitted, labels,
                                                    "target snapshot \"" + name + "\" already exists"));
    r.remote = ref;
    OC_TRY(rememberLayer(db_, ref));
    return insert(db_, r);
  });
}

Result<SnapshotRecord> MetaStore::commit(const std::string& name, const std::string& key, const SnapshotLabels& labels,
                                         int64_t size, int64_t inodes, const std::optional<RemoteLayerRef>& remote) {
  if (name.empty()) return snap::invalidArgument("commit name is empty");
  std::lock_guard lock(mu_);
  return inTransaction<SnapshotRecord>([&]() -> Result<SnapshotRecord> {
    OC_ASSIGN_OR_RETURN(auto existing, findByKey(db_, name));
    if (existing) return snap::alreadyExists("committed snapshot " + name + " already exists");
    OC_ASSIGN_OR_RETURN(auto active, mustFind(db_, key));
    if (active.info.kind != SnapshotKind::kActive)
      return snap::failedPrecondition("snapshot " + key + " is " + kindName(active.info.kind) + ", not active");
    OC_ASSIGN_OR_RETURN(Stmt s, Stmt::prepare(db_,
                                              "UPDATE snapshots SET key = ?1, kind = ?2, labels = ?3, created_ns = ?4,"
                                              " updated_ns = ?4, size = ?5, inodes = ?6 WHERE id = ?7"));
    s.bind(1, name).bind(2, static_cast<int64_t>(SnapshotKind::kCommitted)).bind(3, labelsToJson(labels));
    s.bind(4, nowNs()).bind(5, size).bind(6, inodes).bind(7, active.id);
    OC_TRY(s.run());
    if (remote) OC_TRY(recordRemote(db_, active.id, *remote));
    OC_ASSIGN_OR_RETURN(auto row, findById(db_, active.id));
    if (!row) return makeError("metadata: committed row for " + name + " vanished");
    return std::move(*row);
  });
}

Result<SnapshotRecord> MetaStore::remove(const std::string& key) {
  std::lock_guard lock(mu_);
  return inTransaction<SnapshotRecord>([&]() -> Result<SnapshotRecord> {
    OC_ASSIGN_OR_RETURN(auto row, mustFind(db_, key));
    OC_ASSIGN_OR_RETURN(bool children, hasChildren(db_, row.id));
    if (children) return snap::failedPrecondition("cannot remove snapshot " + key + ": it has children");
    OC_ASSIGN_OR_RETURN(Stmt s, Stmt::prepare(db_, "DELETE FROM snapshots WHERE id = ?1"));
    s.bind(1, row.id);
    OC_TRY(s.run());
    return row;
  });
}

Result<SnapshotInfo> MetaStore::update(const SnapshotInfo& info, const std::vector<std::string>& paths) {
  std::lock_guard lock(mu_);
  return inTransaction<SnapshotInfo>([&]() -> Result<SnapshotInfo> {
    OC_ASSIGN_OR_RETURN(auto row, mustFind(db_, info.name));
    SnapshotLabels labels = row.info.labels;
    if (paths.empty()) labels = info.labels;
    for (const auto& p : paths) {
      if (p.rfind("labels.", 0) == 0) {
        std::string k = p.substr(7);
        auto it = info.labels.find(k);
        // containerd sets the label to the given value, "" when absent from info.
        labels[k] = it == info.labels.end() ? std::string() : it->second;
      } else if (p == "labels") {
        labels = info.labels;
      } else {
        return snap::invalidArgument("cannot update field \"" + p + "\" of snapshot " + info.name);
      }
    }
    OC_ASSIGN_OR_RETURN(Stmt s, Stmt::prepare(db_, "UPDATE snapshots SET labels = ?1, updated_ns = ?2 WHERE id = ?3"));
    row.info.labels = labels;
    row.info.updated_ns = nowNs();
    s.bind(1, labelsToJson(labels)).bind(2, row.info.updated_ns).bind(3, row.id);
    OC_TRY(s.run());
    return row.info;
  });
}

Result<std::vector<RemoteLayerRef>> MetaStore::unusedRemoteLayers() {
  std::lock_guard lock(mu_);
  OC_ASSIGN_OR_RETURN(Stmt s, Stmt::prepare(db_,
                                            "SELECT chain_id, mode, handle FROM remote_layers WHERE chain_id NOT IN"
                                            " (SELECT remote_chain_id FROM snapshots WHERE remote_chain_id IS NOT NULL)"
                                            // Two chains can end in the same layer (one mount): keep it
                                            // while any chain that uses it is still referenced.
                                            " AND handle NOT IN (SELECT r.handle FROM remote_layers r JOIN snapshots s"
                                            " ON s.remote_chain_id = r.chain_id)"));
  std::vector<RemoteLayerRef> out;
  for (;;) {
    OC_ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    out.push_back({s.text(0), s.text(1) == "flat" ? RemoteMode::kFlat : RemoteMode::kLayered, s.text(2)});
  }
  return out;
}

Status MetaStore::forgetRemoteLayer(const std::string& chain_id) {
  std::lock_guard lock(mu_);
  OC_ASSIGN_OR_RETURN(Stmt s,
                      Stmt::prepare(db_,
                                    "DELETE FROM remote_layers WHERE chain_id = ?1 AND chain_id NOT IN"
                                    " (SELECT remote_chain_id FROM snapshots WHERE remote_chain_id IS NOT NULL)"));
  s.bind(1, chain_id);
  return s.run();
}

}  // namespace offcore
