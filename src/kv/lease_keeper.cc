#include "kv/lease_keeper.h"

#include <cerrno>

namespace offcore::kv {

namespace {

int64_t nowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

Result<std::unique_ptr<LeaseKeeper>> LeaseKeeper::start(std::shared_ptr<KvClient> kv, int64_t ttl_s) {
  if (ttl_s < 3) return makeError("a lease of " + std::to_string(ttl_s) + " s is too short (at least 3)", EINVAL);
  int64_t sent = nowNs();
  auto id = kv->leaseGrant(ttl_s);
  if (!id.ok()) return id.error().wrap("etcd lease");
  std::unique_ptr<LeaseKeeper> k(new LeaseKeeper(std::move(kv), *id, ttl_s));
  k->renewed_sent_ns_.store(sent);
  k->thread_ = std::thread([p = k.get()] { p->run(); });
  return k;
}

LeaseKeeper::LeaseKeeper(std::shared_ptr<KvClient> kv, int64_t id, int64_t ttl_s)
    : kv_(std::move(kv)), id_(id), ttl_s_(ttl_s), renewed_sent_ns_(0) {}

LeaseKeeper::~LeaseKeeper() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  (void)kv_->leaseRevoke(id_);  // best effort: unrevoked, it expires within its TTL
}

std::string LeaseKeeper::lostReason() const {
  const int64_t limit = ttl_s_ * 2'000'000'000 / 3;
  int64_t since = nowNs() - renewed_sent_ns_.load();
  if (!lost_flag_.load() && since <= limit) return "";
  std::lock_guard<std::mutex> l(mu_);
  if (lost_.empty()) {
    lost_ = "etcd lease " + std::to_string(id_) + " not renewed for " + std::to_string(since / 1'000'000) + " ms" +
            (last_err_.empty() ? "" : " (" + last_err_ + ")");
    lost_flag_.store(true);
  }
  return lost_;
}

void LeaseKeeper::run() {
  const auto period = std::chrono::milliseconds(ttl_s_ * 1000 / 4);
  std::unique_lock<std::mutex> l(mu_);
  while (!stop_) {
    cv_.wait_for(l, period, [&] { return stop_; });
    if (stop_) return;
    l.unlock();
    int64_t sent = nowNs();
    auto left = kv_->leaseKeepAlive(id_);
    l.lock();
    if (left.ok()) {
      last_err_.clear();
      // An answer to an older renewal never moves the time back.
      if (sent > renewed_sent_ns_.load()) renewed_sent_ns_.store(sent);
      continue;
    }
    last_err_ = left.error().message;
    if (left.error().code == ENOENT && lost_.empty()) {
      lost_ = "etcd lease " + std::to_string(id_) + " expired (" + last_err_ + ")";
      lost_flag_.store(true);
      return;  // nothing left to renew
    }
  }
}

}  // namespace offcore::kv
