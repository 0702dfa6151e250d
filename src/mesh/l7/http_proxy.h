// The L7 HTTP/1.1 proxy: HttpProxyContext holds what all sessions of one
// loop share (the current route table, per-cluster runtime state, the
// upstream keep-alive pool, stats, the access log); HttpSession serves one
// downstream connection: parse, authorize, route, inject faults, pick an
// endpoint, forward over a pooled upstream connection made by the caller's
// Connector (TCP or HBONE), stream the response back, retry, time out.
//
// Config swap: context.setRoutes(RouteTable::build(snapshot)). A session
// takes the current table at each request, so the next request sees the new
// config and established connections are never broken.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "base/event_loop.h"
#include "mesh/http/http1_codec.h"
#include "mesh/l7/h2_upstream.h"
#include "mesh/l7/stats.h"
#include "mesh/l7/upstream_pool.h"
#include "mesh/route/cluster.h"
#include "mesh/route/router.h"
#include "mesh/transport.h"

namespace offcore::mesh::l7 {

struct HttpProxyOptions {
  std::string local_node;  // endpoints on other nodes that are mesh go through HBONE
  // Request bodies stream upstream; per request the proxy holds at most
  // this much unsent (then it stops reading the client), and keeps a copy
  // for retries only while the body read so far fits in it.
  size_t request_buffer_limit = 1 << 20;
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(60)};  // upstream keep-alive
  // A downstream connection with no request in progress (or a head that
  // does not complete) is closed after this.
  std::chrono::milliseconds downstream_idle_timeout{std::chrono::seconds(60)};
  // Envoy's stream_idle_timeout: a request whose stream sees no activity in
  // either direction for this long is answered 408 (or reset once its
  // response started). 0 = none. A Service port's xDS value and a route's
  // idle_timeout override it.
  std::chrono::milliseconds stream_idle_timeout{std::chrono::minutes(5)};
};

// Destroy it after its sessions, once the loop has run the tasks they
// posted (objects released during a callback are destroyed from the loop).
class HttpProxyContext {
 public:
  using Now = std::function<route::TimePoint()>;
  HttpProxyContext(EventLoop& loop, Connector& connector, MetricsRegistry& metrics, route::Random& random,
                   HttpProxyOptions options = {});

  void setRoutes(std::shared_ptr<const route::RouteTable> routes) { routes_ = std::move(routes); }
  std::shared_ptr<const route::RouteTable> routes() const { return routes_; }
  void setAccessLog(AccessLog log) { access_log_ = std::move(log); }
  // Tests drive time; the default is steady_clock.
  void setClock(Now now) { now_ = std::move(now); }

  // Runtime state of a cluster (created on first use, kept across swaps).
  route::ClusterRuntime& cluster(const std::string& key) { return clusters_[key]; }
  const std::map<std::string, route::ClusterRuntime>& clusters() const { return clusters_; }

  EventLoop& loop() { return loop_; }
  Connector& connector() { return connector_; }
  UpstreamPool& pool() { return pool_; }
  H2Pool& h2pool() { return h2_pool_; }
  HttpStats& stats() { return stats_; }
  route::Random& random() { return random_; }
  const HttpProxyOptions& options() const { return options_; }
  route::TimePoint now() const { return now_(); }
  void log(const RequestRecord& r);

 private:
  EventLoop& loop_;
  Connector& connector_;
  HttpStats stats_;
  route::Random& random_;
  HttpProxyOptions options_;
  // Before pool_: pooled connections count against their cluster until the end.
  std::map<std::string, route::ClusterRuntime> clusters_;
  UpstreamPool pool_;
  H2Pool h2_pool_;
  std::shared_ptr<const route::RouteTable> routes_;
  AccessLog access_log_;
  Now now_;
};

// Who is on the other side of a downstream connection (the caller knows
// from the capture: the client pod's address and identity, and the original
// destination it dialled).
struct SessionInfo {
  std::string source_ip;         // used as the upstream source (IP_TRANSPARENT); "" = the SoC's own
  std::string source_identity;   // SPIFFE ID of the client workload ("" = unknown)
  std::string source_namespace;  // "" = from source_identity
  std::string source_workload;   // for stats and logs
  std::string dst_ip;            // original destination (VIP or pod IP)
  uint16_t dst_port = 0;
};

class Exchange;

// One downstream HTTP/1.1 connection. Requests are served one at a time, in
// order (pipelined ones wait in the parser).
class HttpSession : public Transport::Callbacks, public http::Http1Parser::Callbacks {
 public:
  // on_done runs once when the session is over; destroy it after that
  // (e.g. from a posted task), not inside the callback. `already_read` is
  // what a protocol sniffer took off the transport before handing it over.
  HttpSession(HttpProxyContext& ctx, std::unique_ptr<Transport> downstream, SessionInfo info,
              std::function<void(HttpSession*)> on_done, std::string_view already_read = {});
  ~HttpSession() override;

  uint64_t requestsServed() const { return served_; }

  // Downstream transport callbacks.
  void onData(std::string_view bytes) override;
  void onEnd() override;
  void onClosed(const Status& why) override;
  void onDrained() override;
  // Request parser callbacks.
  void onHead(http::MessageHead&& head) override;
  void onBody(std::string_view bytes) override;
  void onTrailers(http::Headers&& trailers) override;
  void onComplete() override;
  void onError(int status, const std::string& why) override;

 private:
  class Sink;
  void exchangeDone(Exchange* x);
  void armIdle();
  void closeDownstream(bool reset);
  void done();

  HttpProxyContext& ctx_;
  std::unique_ptr<Transport> down_;
  SessionInfo info_;
  std::function<void(HttpSession*)> on_done_;
  http::Http1Parser parser_;
  std::unique_ptr<Sink> sink_;
  std::unique_ptr<Exchange> ex_;
  uint64_t served_ = 0;
  bool chunked_ = false;    // the current response is sent chunked
  http::Headers trailers_;  // of the chunked request being read
  EventLoop::TimerId linger_timer_ = 0, idle_timer_ = 0;
  bool down_ended_ = false;
  bool closing_ = false;
  bool finished_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace offcore::mesh::l7
