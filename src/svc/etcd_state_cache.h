// What an agent's watch has seen under /offcore/v1/: the cluster state,
// every node's health, the live nodes and the EIP claims, as of a revision,
// kept by applying each watch event to it (work per change: the changed
// keys, not the cluster). Reads are copies under a mutex, no round trip.
//
// Threads: apply()/reset()/invalidate() from the watch's thread or the
// agent loop, reads from any thread. A read names the revision it needs
// (the caller's own last write) and waits a bounded time for the watch to
// get there; past that, or while invalid, it answers nothing and the
// caller reads etcd itself.
#pragma once

#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "kv/kv.h"
#include "svc/cluster_state.h"

namespace offcore::svc {

class EtcdStateCache {
 public:
  // prefix: "/offcore/v1/".
  explicit EtcdStateCache(std::string prefix) : prefix_(std::move(prefix)) {}

  // Everything from a listing of the prefix at r.revision. A key that does
  // not parse leaves the cache invalid (the error says which).
  Status reset(const kv::RangeResult& r);
  // One batch of the watch, in order. Invalidates the cache on a key that
  // does not parse (reads then go to etcd, which reports it).
  void apply(const kv::WatchBatch& b);
  void invalidate();

  // Each answers only when valid and at revision >= min_rev, waiting up to
  // wait_ms for the watch to catch up.
  std::optional<ClusterState> state(int64_t min_rev, int wait_ms) const;
  // Copies just these objects ("<section>/<name>") of the cached state into
  // `into` (or erases them there); false when it cannot answer.
  bool copyObjects(ClusterState& into, const std::set<std::string>& keys, int64_t min_rev, int wait_ms) const;
  std::optional<std::map<std::string, NodeHealth>> health(int64_t min_rev, int wait_ms) const;
  std::optional<std::set<std::string>> live(int64_t min_rev, int wait_ms) const;
  std::optional<std::map<std::string, std::string>> owners(int64_t min_rev, int wait_ms) const;
  int64_t revision() const;

 private:
  // Applies one key (value "" with deleted) under mu_; false: it did not parse.
  bool applyKey(const std::string& key, const std::string& value, bool deleted, std::string* why);
  bool ready(std::unique_lock<std::mutex>& lock, int64_t min_rev, int wait_ms) const;

  const std::string prefix_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  bool valid_ = false;
  int64_t rev_ = 0;
  ClusterState state_;
  std::map<std::string, NodeHealth> health_;
  std::set<std::string> live_;
  std::map<std::string, std::string> owners_;
};

}  // namespace offcore::svc
