#include "snapshotter/metastore_rows.h"

#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>

#include "base/json.h"
#include "snapshotter/sqlite_stmt.h"

namespace offcore::metarows {

namespace {

constexpr const char* kSelect =
    "SELECT s.id, s.key, COALESCE(s.parent_id, 0), COALESCE(p.key, ''), s.kind, s.labels, s.created_ns,"
    " s.updated_ns, s.size, s.inodes, s.remote_chain_id, s.remote_mode, s.remote_handle"
    " FROM snapshots s LEFT JOIN snapshots p ON p.id = s.parent_id";

SnapshotLabels labelsFromJson(const std::string& text) {
  SnapshotLabels out;
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object()) return out;
  for (const auto& [k, v] : j.items())
    if (v.is_string()) out[k] = v.get<std::string>();
  return out;
}

SnapshotRecord readRecord(const Stmt& s) {
  SnapshotRecord r;
  r.id = s.i64(0);
  r.info.name = s.text(1);
  r.parent_id = s.i64(2);
  r.info.parent = s.text(3);
  r.info.kind = static_cast<SnapshotKind>(s.i64(4));
  r.info.labels = labelsFromJson(s.text(5));
  r.info.created_ns = s.i64(6);
  r.info.updated_ns = s.i64(7);
  r.size = s.i64(8);
  r.inodes = s.i64(9);
  if (!s.isNull(10)) {
    RemoteLayerRef ref;
    ref.chain_id = s.text(10);
    ref.mode = s.text(11) == "flat" ? RemoteMode::kFlat : RemoteMode::kLayered;
    ref.handle = s.text(12);
    r.remote = std::move(ref);
  }
  return r;
}

Result<std::optional<SnapshotRecord>> findOne(sqlite3* db, const std::string& where,
                                              const std::function<void(Stmt&)>& bind) {
  std::string sql = std::string(kSelect) + " WHERE " + where;
  OC_ASSIGN_OR_RETURN(Stmt s, Stmt::prepare(db, sql.c_str()));
  bind(s);
  OC_ASSIGN_OR_RETURN(bool row, s.step());
  if (!row) return std::optional<SnapshotRecord>();
  return std::optional<SnapshotRecord>(readRecord(s));
}

}  // namespace

int64_t nowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string labelsToJson(const SnapshotLabels& labels) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : labels) j[k] = v;
  return dumpJson(j);
}

const char* modeName(RemoteMode mode) { return mode == RemoteMode::kFlat ? "flat" : "layered"; }

Result<std::optional<SnapshotRecord>> findByKey(sqlite3* db, const std::string& key) {
  return findOne(db, "s.key = ?1", [&](Stmt& s) { s.bind(1, key); });
}

Result<std::optional<SnapshotRecord>> findById(sqlite3* db, int64_t id) {
  return findOne(db, "s.id = ?1", [&](Stmt& s) { s.bind(1, id); });
}

Result<std::vector<SnapshotRecord>> all(sqlite3* db) {
  std::string sql = std::string(kSelect) + " ORDER BY s.id";
  OC_ASSIGN_OR_RETURN(Stmt s, Stmt::prepare(db, sql.c_str()));
  std::vector<SnapshotRecord> out;
  for (;;) {
    OC_ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    out.push_back(readRecord(s));
  }
  return out;
}

Result<bool> hasChildren(sqlite3* db, int64_t id) {
  OC_ASSIGN_OR_RETURN(Stmt s, Stmt::prepare(db, "SELECT 1 FROM snapshots WHERE parent_id = ?1 LIMIT 1"));
  s.bind(1, id);
  return s.step();
}

Result<SnapshotRecord> insert(sqlite3* db, const SnapshotRecord& r) {
  OC_ASSIGN_OR_RETURN(Stmt s, Stmt::prepare(db,
                                            "INSERT INTO snapshots (key, parent_id, kind, labels, created_ns,"
                                            " updated_ns, size, inodes, remote_chain_id, remote_mode, remote_handle)"
                                            " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"));
  s.bind(1, r.info.name);
  if (r.parent_id != 0)
    s.bind(2, r.parent_id);
  else
    s.bindNull(2);
  s.bind(3, static_cast<int64_t>(r.info.kind)).bind(4, labelsToJson(r.info.labels));
  s.bind(5, r.info.created_ns).bind(6, r.info.updated_ns).bind(7, r.size).bind(8, r.inodes);
  if (r.remote) {
    s.bind(9, r.remote->chain_id).bind(10, std::string(modeName(r.remote->mode))).bind(11, r.remote->handle);
  } else {
    s.bindNull(9).bindNull(10).bindNull(11);
  }
  OC_TRY(s.run());
  OC_ASSIGN_OR_RETURN(auto row, findById(db, sqlite3_last_insert_rowid(db)));
  if (!row) return makeError("metadata: inserted row for " + r.info.name + " vanished");
  return std::move(*row);
}

Status exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errmsg(db);
    sqlite3_free(err);
    return makeError("metadata: " + msg + " (in: " + std::string(sql).substr(0, 40) + ")");
  }
  return okStatus();
}

}  // namespace offcore::metarows
