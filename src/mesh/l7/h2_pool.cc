// H2Pool: HTTP/2 upstream connections by pool key, connecting ones
// included (h2_upstream.h).
#include <memory>
#include <utility>

#include "mesh/l7/h2_upstream.h"

namespace offcore::mesh::l7 {

namespace {
constexpr size_t kMaxWaiters = 100;  // requests waiting on one connection being made
}  // namespace

struct H2Pool::Entry {
  std::string key;
  std::unique_ptr<H2Conn> conn;  // nullptr while connecting
  std::vector<Ready> waiters;
  EventLoop::TimerId idle_timer = 0;
  uint64_t started_at_check = 0;
};

H2Pool::H2Pool(EventLoop& loop, std::chrono::milliseconds idle_timeout) : loop_(loop), idle_timeout_(idle_timeout) {}

H2Pool::~H2Pool() {
  *alive_ = false;
  for (auto& [k, l] : entries_)
    for (auto& e : l)
      if (e->idle_timer) loop_.cancelTimer(e->idle_timer);
}

H2Conn* H2Pool::find(const std::string& key) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return nullptr;
  for (auto& e : it->second)
    if (e->conn && e->conn->available()) return e->conn.get();
  return nullptr;
}

bool H2Pool::join(const std::string& key, Ready ready) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return false;
  for (auto& e : it->second) {
    if (!e->conn && e->waiters.size() < kMaxWaiters) {
      e->waiters.push_back(std::move(ready));
      return true;
    }
  }
  return false;
}

void H2Pool::connect(const std::string& key, Connector& connector, const ConnectTarget& target,
                     std::chrono::milliseconds timeout, route::ClusterRuntime* cluster, uint32_t max_requests,
                     Ready ready) {
  auto e = std::make_unique<Entry>();
  e->key = key;
  e->waiters.push_back(std::move(ready));
  Entry* raw = e.get();
  entries_[key].push_back(std::move(e));
  std::weak_ptr<bool> weak = alive_;
  connector.connect(target, timeout, [this, weak, raw, cluster, max_requests](Result<std::unique_ptr<Transport>> res) {
    if (weak.expired()) {
      if (cluster) --cluster->counters().connections;
      return;
    }
    std::vector<Ready> waiters = std::move(raw->waiters);
    if (!res.ok()) {
      --cluster->counters().connections;
      const Error& err = res.error();
      gone(raw);
      for (auto& w : waiters) w(err);
      return;
    }
    ++opened_;
    auto conn = std::make_unique<UpstreamConn>(std::move(*res), cluster, true);
    raw->conn = std::make_unique<H2Conn>(loop_, std::move(conn), max_requests, [this, raw](H2Conn*) { gone(raw); });
    armIdle(raw);
    H2Conn* c = raw->conn.get();
    for (auto& w : waiters) w(c);
  });
}

void H2Pool::armIdle(Entry* e) {
  e->idle_timer = loop_.addTimer(idle_timeout_, [this, e] {
    e->idle_timer = 0;
    if (!e->conn) return;
    if (e->conn->active() == 0 && e->conn->started() == e->started_at_check) {
      e->conn->shutdown();  // idle for a whole period
      return;
    }
    e->started_at_check = e->conn->started();
    armIdle(e);
  });
}

void H2Pool::gone(Entry* e) {
  auto it = entries_.find(e->key);
  if (it == entries_.end()) return;
  for (auto l = it->second.begin(); l != it->second.end(); ++l) {
    if (l->get() != e) continue;
    std::shared_ptr<Entry> owned(std::move(*l));
    it->second.erase(l);
    if (it->second.empty()) entries_.erase(it);
    if (owned->idle_timer) loop_.cancelTimer(owned->idle_timer), owned->idle_timer = 0;
    loop_.post([owned] {});  // we may be inside its connection's callback
    return;
  }
}

size_t H2Pool::connections() const {
  size_t n = 0;
  for (const auto& [k, l] : entries_) n += l.size();
  return n;
}

}  // namespace offcore::mesh::l7
