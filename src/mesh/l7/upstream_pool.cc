#include "mesh/l7/upstream_pool.h"

namespace offcore::mesh::l7 {

UpstreamConn::UpstreamConn(std::unique_ptr<Transport> t, route::ClusterRuntime* cluster, bool already_counted)
    : t_(std::move(t)), cluster_(cluster) {
  if (cluster_ && !already_counted) ++cluster_->counters().connections;
}

UpstreamConn::~UpstreamConn() {
  if (cluster_ && cluster_->counters().connections > 0) --cluster_->counters().connections;
}

std::string poolKey(const ConnectTarget& t) {
  return t.ip + ":" + std::to_string(t.port) + "|" + t.source_ip + "|" + t.node_ip + "|" + t.source_identity;
}

// An idle connection watches its transport: anything from the peer (data,
// FIN, close) means it cannot be reused.
struct UpstreamPool::Idle : Transport::Callbacks {
  UpstreamPool* pool = nullptr;
  std::string key;
  std::unique_ptr<UpstreamConn> conn;
  EventLoop::TimerId timer = 0;
  void onData(std::string_view) override { pool->drop(this); }
  void onEnd() override { pool->drop(this); }
  void onClosed(const Status&) override { pool->drop(this); }
};

UpstreamPool::UpstreamPool(EventLoop& loop, std::chrono::milliseconds idle_timeout, size_t max_idle_per_key)
    : loop_(loop), idle_timeout_(idle_timeout), max_idle_per_key_(max_idle_per_key) {}

UpstreamPool::~UpstreamPool() {
  for (auto& [k, l] : idle_)
    for (auto& i : l) {
      loop_.cancelTimer(i->timer);
      i->conn->transport().setCallbacks(nullptr);
    }
}

std::unique_ptr<UpstreamConn> UpstreamPool::take(const std::string& key) {
  auto it = idle_.find(key);
  if (it == idle_.end() || it->second.empty()) return nullptr;
  std::unique_ptr<Idle> i = std::move(it->second.back());
  it->second.pop_back();
  if (it->second.empty()) idle_.erase(it);
  loop_.cancelTimer(i->timer);
  i->conn->transport().setCallbacks(nullptr);
  return std::move(i->conn);
}

void UpstreamPool::put(const std::string& key, std::unique_ptr<UpstreamConn> conn) {
  auto& list = idle_[key];
  if (list.size() >= max_idle_per_key_) {
    destroyLater(loop_, std::move(conn));
    return;
  }
  auto i = std::make_unique<Idle>();
  i->pool = this;
  i->key = key;
  i->conn = std::move(conn);
  Idle* raw = i.get();
  i->conn->transport().setCallbacks(raw);
  i->conn->transport().pauseReading(false);
  i->timer = loop_.addTimer(idle_timeout_, [this, raw] {
    raw->timer = 0;
    drop(raw);
  });
  list.push_back(std::move(i));
}

void UpstreamPool::drop(Idle* idle) {
  auto it = idle_.find(idle->key);
  if (it == idle_.end()) return;
  for (auto l = it->second.begin(); l != it->second.end(); ++l) {
    if (l->get() != idle) continue;
    std::unique_ptr<Idle> owned = std::move(*l);
    it->second.erase(l);
    if (it->second.empty()) idle_.erase(it);
    if (owned->timer) loop_.cancelTimer(owned->timer);
    owned->conn->transport().setCallbacks(nullptr);
    // The transport may be inside its own callback: destroy it later.
    destroyLater(loop_, std::move(owned->conn));
    std::shared_ptr<Idle> s(std::move(owned));
    loop_.post([s] {});
    return;
  }
}

size_t UpstreamPool::idle() const {
  size_t n = 0;
  for (const auto& [k, l] : idle_) n += l.size();
  return n;
}

}  // namespace offcore::mesh::l7
