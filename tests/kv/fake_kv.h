// An in-memory KvClient with etcd's rules: one revision counter, per-key
// create/mod revision and version, transactions, leases (expired by hand with
// expire()), watches from a revision, compaction. Watch callbacks run on the
// writer's thread, after the write, outside the lock.
#pragma once

#include <algorithm>
#include <map>
#include <mutex>
#include <set>

#include "kv/kv.h"

namespace offcore::kv {

class FakeKv final : public KvClient {
 public:
  Result<RangeResult> range(const std::string& key, const std::string& range_end, int64_t revision = 0) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (fail_) return makeError("fake etcd: down", EHOSTUNREACH);
    ++ranges_;
    if (revision > 0 && revision < compacted_) return makeError("fake etcd: revision compacted", ERANGE);
    RangeResult out;
    out.revision = rev_;
    for (auto it = data_.lower_bound(key); it != data_.end() && inRange(it->first, key, range_end); ++it) {
      out.kvs.push_back(it->second);
    }
    return out;
  }

  Result<TxnResult> txn(const std::vector<Compare>& compares, const std::vector<Op>& success,
                        const std::vector<Op>& failure = {}) override {
    std::vector<WatchEvent> events;
    TxnResult out;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (fail_) return makeError("fake etcd: down", EHOSTUNREACH);
      ++txns_;
      out.succeeded = std::all_of(compares.begin(), compares.end(), [&](const Compare& c) { return holds(c); });
      const auto& ops = out.succeeded ? success : failure;
      bool writes = std::any_of(ops.begin(), ops.end(), [&](const Op& op) { return touches(op); });
      if (writes) ++rev_;
      for (const Op& op : ops) apply(op, events);
      if (!events.empty()) history_.push_back({rev_, events});
      out.revision = rev_;
    }
    notify(events);
    return out;
  }

  Result<int64_t> leaseGrant(int64_t ttl_s) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (fail_) return makeError("fake etcd: down", EHOSTUNREACH);
    int64_t id = ++next_lease_;
    leases_[id] = ttl_s;
    return id;
  }
  Result<int64_t> leaseKeepAlive(int64_t id) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (fail_) return makeError("fake etcd: down", EHOSTUNREACH);
    auto it = leases_.find(id);
    if (it == leases_.end()) return makeError("fake etcd: the lease expired", ENOENT);
    ++keepalives_;
    return it->second;
  }
  Status leaseRevoke(int64_t id) override {
    expire(id);
    return okStatus();
  }

  // Ends a lease as its TTL running out would: its keys go, in one revision.
  void expire(int64_t id) {
    std::vector<WatchEvent> events;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!leases_.erase(id)) return;
      std::vector<std::string> keys;
      for (const auto& [k, v] : data_) {
        if (v.lease == id) keys.push_back(k);
      }
      if (keys.empty()) return;
      ++rev_;
      for (const auto& k : keys) apply(Op::del(k), events);
      history_.push_back({rev_, events});
    }
    notify(events);
  }

  Result<std::unique_ptr<Watch>> watch(const std::string& key, const std::string& range_end, int64_t start,
                                       WatchCallback fn) override {
    auto w = std::make_shared<Watcher>(Watcher{key, range_end, std::move(fn)});
    std::vector<WatchEvent> backlog;
    WatchBatch compacted;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (start > 0 && start < compacted_) {
        compacted.compacted = compacted_;
        compacted.revision = rev_;
      } else {
        for (const auto& [r, evs] : history_) {
          if (start == 0 || r < start) continue;
          for (const auto& e : evs) {
            if (inRange(e.kv.key, key, range_end)) backlog.push_back(e);
          }
        }
        watchers_.insert(w);
      }
    }
    if (compacted.compacted > 0) {
      w->fn(compacted);
    } else if (!backlog.empty()) {
      w->fn(WatchBatch{backlog, backlog.back().kv.mod_revision, 0});
    }
    return std::unique_ptr<Watch>(std::make_unique<Handle>(this, w));
  }

  Status compact(int64_t revision) override {
    std::lock_guard<std::mutex> lock(mu_);
    compacted_ = std::max(compacted_, revision);
    std::erase_if(history_, [&](const auto& h) { return h.first < revision; });
    return okStatus();
  }

  std::string describe() const override { return "fake-etcd"; }

  // Test knobs and counters.
  void setDown(bool down) {
    std::lock_guard<std::mutex> lock(mu_);
    fail_ = down;
  }
  int64_t revision() const {
    std::lock_guard<std::mutex> lock(mu_);
    return rev_;
  }
  int64_t txns() const {
    std::lock_guard<std::mutex> lock(mu_);
    return txns_;
  }
  int64_t ranges() const {
    std::lock_guard<std::mutex> lock(mu_);
    return ranges_;
  }
  size_t liveLeases() const {
    std::lock_guard<std::mutex> lock(mu_);
    return leases_.size();
  }

 private:
  struct Watcher {
    std::string key, range_end;
    WatchCallback fn;
  };
  struct Handle final : Watch {
    Handle(FakeKv* kv, std::shared_ptr<Watcher> w) : kv(kv), w(std::move(w)) {}
    ~Handle() override {
      std::lock_guard<std::mutex> lock(kv->mu_);
      kv->watchers_.erase(w);
    }
    FakeKv* kv;
    std::shared_ptr<Watcher> w;
  };

  static bool inRange(const std::string& k, const std::string& key, const std::string& range_end) {
    if (range_end.empty()) return k == key;
    if (range_end == std::string(1, '\0')) return k >= key;
    return k >= key && k < range_end;
  }

  bool holds(const Compare& c) const {
    auto it = data_.find(c.key);
    KeyValue none;
    const KeyValue& kv = it == data_.end() ? none : it->second;
    if (c.target == Compare::Target::Value) {
      if (it == data_.end()) return false;
      int cmp = kv.value.compare(c.value);
      return test(cmp, c.result);
    }
    int64_t have = c.target == Compare::Target::Version  ? kv.version
                   : c.target == Compare::Target::Create ? kv.create_revision
                                                         : kv.mod_revision;
    return test(have < c.number ? -1 : have > c.number ? 1 : 0, c.result);
  }
  static bool test(int cmp, Compare::Result r) {
    switch (r) {
      case Compare::Result::Equal: return cmp == 0;
      case Compare::Result::NotEqual: return cmp != 0;
      case Compare::Result::Greater: return cmp > 0;
      case Compare::Result::Less: return cmp < 0;
    }
    return false;
  }
  bool touches(const Op& op) const {
    if (op.kind == Op::Kind::Put) return true;
    for (auto it = data_.lower_bound(op.key); it != data_.end() && inRange(it->first, op.key, op.range_end); ++it) {
      return true;
    }
    return false;
  }
  void apply(const Op& op, std::vector<WatchEvent>& events) {
    if (op.kind == Op::Kind::Put) {
      KeyValue& kv = data_[op.key];
      if (kv.version == 0) kv.create_revision = rev_;
      kv.key = op.key;
      kv.value = op.value;
      kv.mod_revision = rev_;
      kv.version += 1;
      kv.lease = op.lease;
      events.push_back({WatchEvent::Type::Put, kv});
      return;
    }
    for (auto it = data_.lower_bound(op.key); it != data_.end() && inRange(it->first, op.key, op.range_end);) {
      KeyValue gone;
      gone.key = it->first;
      gone.mod_revision = rev_;
      events.push_back({WatchEvent::Type::Delete, gone});
      it = data_.erase(it);
    }
  }
  void notify(const std::vector<WatchEvent>& events) {
    if (events.empty()) return;
    std::vector<std::shared_ptr<Watcher>> ws;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ws.assign(watchers_.begin(), watchers_.end());
    }
    for (const auto& w : ws) {
      WatchBatch b;
      for (const auto& e : events) {
        if (inRange(e.kv.key, w->key, w->range_end)) b.events.push_back(e);
      }
      if (b.events.empty()) continue;
      b.revision = b.events.back().kv.mod_revision;
      w->fn(b);
    }
  }

  mutable std::mutex mu_;
  std::map<std::string, KeyValue> data_;
  std::vector<std::pair<int64_t, std::vector<WatchEvent>>> history_;
  std::map<int64_t, int64_t> leases_;  // id -> ttl
  std::set<std::shared_ptr<Watcher>> watchers_;
  int64_t rev_ = 1, compacted_ = 0, next_lease_ = 0, txns_ = 0, keepalives_ = 0, ranges_ = 0;
  bool fail_ = false;
};

}  // namespace offcore::kv
