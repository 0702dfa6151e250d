// A prepared SQLite statement that reports failures as Result. Internal to
// the metastore; callers hold the store's mutex.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <string>

#include "base/result.h"

namespace offcore {

class Stmt {
 public:
  static Result<Stmt> prepare(sqlite3* db, const char* sql) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) != SQLITE_OK)
      return makeError(std::string("metadata: prepare: ") + sqlite3_errmsg(db));
    return Stmt(db, s);
  }
  Stmt(Stmt&& o) noexcept : db_(o.db_), s_(o.s_) { o.s_ = nullptr; }
  Stmt& operator=(Stmt&&) = delete;
  Stmt(const Stmt&) = delete;
  ~Stmt() { sqlite3_finalize(s_); }

  Stmt& bind(int i, int64_t v) {
    sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  Stmt& bind(int i, const std::string& v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bindNull(int i) {
    sqlite3_bind_null(s_, i);
    return *this;
  }

  // true while a row is available.
  Result<bool> step() {
    int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return makeError(std::string("metadata: ") + sqlite3_errmsg(db_) +
                     " (the database under --root may be damaged or its disk full)");
  }
  Status run() {
    auto r = step();
    if (!r.ok()) return r.error();
    return okStatus();
  }

  int64_t i64(int col) const { return sqlite3_column_int64(s_, col); }
  bool isNull(int col) const { return sqlite3_column_type(s_, col) == SQLITE_NULL; }
  std::string text(int col) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s_, col));
    return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(s_, col))) : std::string();
  }

 private:
  Stmt(sqlite3* db, sqlite3_stmt* s) : db_(db), s_(s) {}
  sqlite3* db_;
  sqlite3_stmt* s_;
};

}  // namespace offcore
