// Row-level helpers of the metastore: reading records and encoding fields.
// Internal; every function expects the store's mutex to be held.
#pragma once

#include <sqlite3.h>

#include <optional>
#include <string>

#include "base/result.h"
#include "snapshotter/metastore.h"

namespace offcore::metarows {

int64_t nowNs();
std::string labelsToJson(const SnapshotLabels& labels);
const char* modeName(RemoteMode mode);

Result<std::optional<SnapshotRecord>> findByKey(sqlite3* db, const std::string& key);
Result<std::optional<SnapshotRecord>> findById(sqlite3* db, int64_t id);
Result<std::vector<SnapshotRecord>> all(sqlite3* db);
Result<bool> hasChildren(sqlite3* db, int64_t id);
// Inserts a row and returns it as stored.
Result<SnapshotRecord> insert(sqlite3* db, const SnapshotRecord& r);
Status exec(sqlite3* db, const char* sql);

}  // namespace offcore::metarows
