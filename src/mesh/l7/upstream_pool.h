// Keep-alive upstream connections, per target (endpoint, source address,
// tunnel, identity: a transparent connection from one client pod's address
// is only reused for that pod). Idle connections are dropped when the peer
// closes them or after idle_timeout. Each connection counts toward its
// cluster's circuit-breaker connection count while it exists.
#pragma once

#include <chrono>
#include <list>
#include <map>
#include <memory>
#include <string>

#include "base/event_loop.h"
#include "mesh/route/cluster.h"
#include "mesh/transport.h"

namespace offcore::mesh::l7 {

// An upstream connection and the cluster it is accounted to.
class UpstreamConn {
 public:
  // already_counted: the caller counted the connection when it started
  // connecting (so concurrent connects respect max_connections).
  UpstreamConn(std::unique_ptr<Transport> t, route::ClusterRuntime* cluster, bool already_counted = false);
  ~UpstreamConn();
  Transport& transport() { return *t_; }
  uint32_t requests = 0;  // served so far (maxRequestsPerConnection)

 private:
  std::unique_ptr<Transport> t_;
  route::ClusterRuntime* cluster_;
};

std::string poolKey(const ConnectTarget& t);

class UpstreamPool {
 public:
  UpstreamPool(EventLoop& loop, std::chrono::milliseconds idle_timeout = std::chrono::seconds(60),
               size_t max_idle_per_key = 32);
  ~UpstreamPool();

  // An idle connection for `key`, or nullptr.
  std::unique_ptr<UpstreamConn> take(const std::string& key);
  // Back to the pool after a complete keep-alive exchange.
  void put(const std::string& key, std::unique_ptr<UpstreamConn> conn);
  size_t idle() const;

 private:
  struct Idle;
  void drop(Idle* idle);

  EventLoop& loop_;
  std::chrono::milliseconds idle_timeout_;
  size_t max_idle_per_key_;
  std::map<std::string, std::list<std::unique_ptr<Idle>>> idle_;
};

// Destroys on a later loop turn (never inside the object's own callback).
template <typename T>
void destroyLater(EventLoop& loop, std::unique_ptr<T> p) {
  if (!p) return;
  std::shared_ptr<T> s(std::move(p));
  loop.post([s] {});
}

}  // namespace offcore::mesh::l7
