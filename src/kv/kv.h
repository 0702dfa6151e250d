// KvClient: the small slice of etcd v3 offcore uses, as a pure interface.
// The Impl (etcd_client.h) talks to real members; tests/kv/fake_kv.h is an
// in-memory one with the same revision, transaction, lease and watch rules.
//
// Model (etcd's): one ordered key space; every change bumps the store's
// revision; each key carries the revision that created it, the one that last
// modified it and how many times it changed since creation. A transaction
// checks every Compare, then applies `success` or `failure` atomically. A
// key put with a lease is deleted when the lease expires.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"

namespace offcore::kv {

struct KeyValue {
  std::string key, value;
  int64_t create_revision = 0, mod_revision = 0, version = 0, lease = 0;
  bool operator==(const KeyValue&) const = default;
};

struct RangeResult {
  int64_t revision = 0;  // the store's revision the range was read at
  std::vector<KeyValue> kvs;
};

// One test of a transaction. `number` is compared for Version/Create/Mod,
// `value` for Value. A key that does not exist has version, create and mod 0.
struct Compare {
  enum class Target { Version, Create, Mod, Value };
  enum class Result { Equal, NotEqual, Greater, Less };
  std::string key;
  Target target = Target::Mod;
  Result result = Result::Equal;
  int64_t number = 0;
  std::string value;
};

// A write inside a transaction. Delete with range_end removes [key, range_end).
struct Op {
  enum class Kind { Put, Delete };
  Kind kind = Kind::Put;
  std::string key, value, range_end;
  int64_t lease = 0;  // Put only: 0 = none
  static Op put(std::string k, std::string v, int64_t lease = 0) {
    return {Kind::Put, std::move(k), std::move(v), "", lease};
  }
  static Op del(std::string k, std::string range_end = "") {
    return {Kind::Delete, std::move(k), "", std::move(range_end), 0};
  }
};

struct TxnResult {
  bool succeeded = false;
  int64_t revision = 0;  // after the transaction
};

struct WatchEvent {
  enum class Type { Put, Delete };
  Type type = Type::Put;
  KeyValue kv;  // a Delete carries the key and the deleting revision as mod_revision
};

// What a watch delivers: events in revision order, or the end of the watch.
// `compacted` > 0: the start revision was compacted away; the caller re-lists
// (range at the current revision) and watches again from there.
struct WatchBatch {
  std::vector<WatchEvent> events;
  int64_t revision = 0;   // the store's revision when this batch was sent
  int64_t compacted = 0;  // > 0: the watch ended, history before this revision is gone
};

// Cancels the watch when destroyed; the callback is never called after that.
class Watch {
 public:
  virtual ~Watch() = default;
};

// Called on the watch's own thread. A member going away is not an error the
// callback sees: the watch resumes on another member from the revision after
// the last event it delivered.
using WatchCallback = std::function<void(const WatchBatch&)>;

class KvClient {
 public:
  virtual ~KvClient() = default;

  // [key, range_end) ("" = key alone) at `revision` (0 = the newest), sorted by key.
  virtual Result<RangeResult> range(const std::string& key, const std::string& range_end, int64_t revision = 0) = 0;
  virtual Result<TxnResult> txn(const std::vector<Compare>& compares, const std::vector<Op>& success,
                                const std::vector<Op>& failure = {}) = 0;

  // Leases, in whole seconds. keepAlive returns the TTL left after the renewal;
  // an expired or revoked lease is an error with code ENOENT.
  virtual Result<int64_t> leaseGrant(int64_t ttl_s) = 0;
  virtual Result<int64_t> leaseKeepAlive(int64_t id) = 0;
  virtual Status leaseRevoke(int64_t id) = 0;

  // Every change to [key, range_end) from start_revision on (0 = from now).
  virtual Result<std::unique_ptr<Watch>> watch(const std::string& key, const std::string& range_end,
                                               int64_t start_revision, WatchCallback fn) = 0;

  // Drops history before revision (watches from before it end with `compacted`).
  virtual Status compact(int64_t revision) = 0;

  // Where it connects, for messages ("etcd://a:2379,b:2379").
  virtual std::string describe() const = 0;
};

// The first key after every key that starts with prefix: a prefix's range_end.
std::string prefixEnd(const std::string& prefix);

}  // namespace offcore::kv
