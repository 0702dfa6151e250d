// LeaseKeeper: an etcd lease kept alive by its own thread for as long as the
// object lives, revoked when it is destroyed (so the keys put with it go at
// once, not a TTL later). What holds something by a lease (a claim, a lock)
// asks lostReason() before it acts: a lease that could not be renewed for
// two thirds of its TTL may be gone on the server already, so it counts as
// lost from then on (the margin covers clock rates and a renewal in flight).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "base/result.h"
#include "kv/kv.h"

namespace offcore::kv {

class LeaseKeeper {
 public:
  // Grants a lease of ttl_s (>= 3) seconds and starts renewing it every
  // ttl_s / 4.
  static Result<std::unique_ptr<LeaseKeeper>> start(std::shared_ptr<KvClient> kv, int64_t ttl_s);
  ~LeaseKeeper();
  LeaseKeeper(const LeaseKeeper&) = delete;
  LeaseKeeper& operator=(const LeaseKeeper&) = delete;

  int64_t id() const { return id_; }
  int64_t ttlSeconds() const { return ttl_s_; }
  // "" while the lease is safely held; else one line saying why not. Once
  // lost, it stays lost. Cheap while held (two atomic loads and a clock
  // read): the disk service asks before every I/O.
  std::string lostReason() const;

 private:
  LeaseKeeper(std::shared_ptr<KvClient> kv, int64_t id, int64_t ttl_s);
  void run();

  std::shared_ptr<KvClient> kv_;
  const int64_t id_, ttl_s_;
  // When the last renewal that etcd answered was sent (steady clock, ns).
  std::atomic<int64_t> renewed_sent_ns_;
  mutable std::atomic<bool> lost_flag_{false};  // lost_ is set
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  mutable std::string lost_;  // set once, under mu_
  std::string last_err_;      // the last failed renewal's error, under mu_
  std::thread thread_;
};

}  // namespace offcore::kv
