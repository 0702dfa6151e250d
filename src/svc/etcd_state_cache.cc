#include "svc/etcd_state_cache.h"

#include <chrono>
#include <cstdlib>

#include "base/log.h"

namespace offcore::svc {

bool EtcdStateCache::applyKey(const std::string& key, const std::string& value, bool deleted, std::string* why) {
  if (key.compare(0, prefix_.size(), prefix_) != 0) return true;
  const std::string rest = key.substr(prefix_.size());
  auto under = [&](const char* dir, std::string* name) {
    size_t n = std::char_traits<char>::length(dir);
    if (rest.compare(0, n, dir) != 0) return false;
    *name = rest.substr(n);
    return true;
  };
  std::string name;
  if (rest == "meta/generation") {
    if (deleted) return true;
    char* end = nullptr;
    state_.generation = std::strtoull(value.c_str(), &end, 10);
    if (end == value.c_str() || *end != '\0') {
      *why = key + " is not a number";
      return false;
    }
  } else if (under("health/", &name)) {
    if (deleted) {
      health_.erase(name);
      return true;
    }
    if (auto h = readableHealth(value, "etcd key " + key)) {
      health_[name] = std::move(*h);
    } else {
      health_.erase(name);  // as the directory store: an unreadable record is skipped
    }
  } else if (under("live/", &name)) {
    if (deleted) {
      live_.erase(name);
    } else {
      live_.insert(name);
    }
  } else if (under("owners/", &name)) {
    if (deleted) {
      owners_.erase(name);
    } else {
      owners_[name] = value;
    }
  } else if (deleted) {
    eraseStateObject(state_, rest);
  } else if (isStateObjectKey(rest)) {
    auto st = readStateObject(state_, rest, value, "etcd key " + key);
    if (!st.ok()) {
      *why = st.error().message;
      return false;
    }
  }
  return true;
}

Status EtcdStateCache::reset(const kv::RangeResult& r) {
  std::lock_guard<std::mutex> lock(mu_);
  valid_ = false;
  state_ = ClusterState::empty();
  health_.clear();
  live_.clear();
  owners_.clear();
  for (const auto& kv : r.kvs) {
    std::string why;
    if (!applyKey(kv.key, kv.value, false, &why)) return makeError("cluster store: " + why);
  }
  rev_ = r.revision;
  valid_ = true;
  cv_.notify_all();
  return okStatus();
}

void EtcdStateCache::apply(const kv::WatchBatch& b) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!valid_) return;
  for (const auto& e : b.events) {
    std::string why;
    if (!applyKey(e.kv.key, e.kv.value, e.type == kv::WatchEvent::Type::Delete, &why)) {
      spdlog::warn("cluster store: {}; reading etcd directly until the next listing", why);
      valid_ = false;
      return;
    }
    rev_ = std::max(rev_, e.kv.mod_revision);
  }
  rev_ = std::max(rev_, b.revision);
  cv_.notify_all();
}

void EtcdStateCache::invalidate() {
  std::lock_guard<std::mutex> lock(mu_);
  valid_ = false;
  cv_.notify_all();
}

bool EtcdStateCache::ready(std::unique_lock<std::mutex>& lock, int64_t min_rev, int wait_ms) const {
  return cv_.wait_for(lock, std::chrono::milliseconds(wait_ms), [&] { return !valid_ || rev_ >= min_rev; }) && valid_;
}

std::optional<ClusterState> EtcdStateCache::state(int64_t min_rev, int wait_ms) const {
  std::unique_lock<std::mutex> lock(mu_);
  if (!ready(lock, min_rev, wait_ms)) return std::nullopt;
  return state_;
}

bool EtcdStateCache::copyObjects(ClusterState& into, const std::set<std::string>& keys, int64_t min_rev,
                                 int wait_ms) const {
  std::unique_lock<std::mutex> lock(mu_);
  if (!ready(lock, min_rev, wait_ms)) return false;
  for (const auto& key : keys) copyStateObject(state_, into, key);
  return true;
}

std::optional<std::map<std::string, NodeHealth>> EtcdStateCache::health(int64_t min_rev, int wait_ms) const {
  std::unique_lock<std::mutex> lock(mu_);
  if (!ready(lock, min_rev, wait_ms)) return std::nullopt;
  return health_;
}

std::optional<std::set<std::string>> EtcdStateCache::live(int64_t min_rev, int wait_ms) const {
  std::unique_lock<std::mutex> lock(mu_);
  if (!ready(lock, min_rev, wait_ms)) return std::nullopt;
  return live_;
}

std::optional<std::map<std::string, std::string>> EtcdStateCache::owners(int64_t min_rev, int wait_ms) const {
  std::unique_lock<std::mutex> lock(mu_);
  if (!ready(lock, min_rev, wait_ms)) return std::nullopt;
  return owners_;
}

int64_t EtcdStateCache::revision() const {
  std::lock_guard<std::mutex> lock(mu_);
  return rev_;
}

}  // namespace offcore::svc
