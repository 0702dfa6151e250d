// One HTTP request's way through the proxy, whatever the downstream
// protocol: route, fault, circuit breaker, endpoint pick, authorization,
// pooled HTTP/1.1 or multiplexed HTTP/2 upstream, retries and timeouts, the response handed to a
// Sink (the HTTP/1.1 or HTTP/2 downstream session), one access-log record.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "mesh/http/http1_codec.h"
#include "mesh/l7/h2_upstream.h"
#include "mesh/l7/http_proxy.h"
#include "mesh/l7/request_body.h"
#include "mesh/route/policy.h"

namespace offcore::mesh::l7 {

class Exchange {
 public:
  class Sink {
   public:
    virtual ~Sink() = default;
    // The response head: status, end-to-end headers, and the upstream's
    // framing (content_length / chunked / until_close). no_body: HEAD, 204, 304.
    virtual void onResponseHead(http::MessageHead& head, bool no_body) = 0;
    virtual void onResponseBody(std::string_view bytes) = 0;
    // Response trailers (gRPC's grpc-status, grpc-message), before onResponseEnd.
    virtual void onResponseTrailers(const http::Headers& trailers) = 0;
    virtual void onResponseEnd() = 0;
    // Failed after the head went out: abort the response (RST).
    virtual void onResponseAbort() = 0;
    // Over, the record is logged. Last call; destroy the exchange later.
    virtual void onExchangeDone(Exchange* exchange) = 0;
    // Response bytes not yet sent downstream (above 1 MiB the upstream is paused).
    virtual size_t responseBacklog() const = 0;
    // The request body backlog went back down (requestPaused() turned
    // false): resume reading the request.
    virtual void onRequestDrained() {}
  };

  Exchange(HttpProxyContext& ctx, const SessionInfo& info, Sink* sink);
  ~Exchange();

  // The request head arrived (starts the clock).
  void begin(http::MessageHead&& head);
  // Request body bytes, streamed to the upstream as they come (exchange_body.cc).
  void addBody(std::string_view bytes);
  // The request is complete (trailers: HTTP/2 or chunked trailers). Starts
  // the route timeout, as Envoy does.
  void endBody(http::Headers trailers = {});
  // Route and forward the request (once; at the head, or after endBody for
  // a request without a body). The body streams behind it.
  void dispatch();
  // More than request_buffer_limit of the body waits for the upstream: stop
  // reading the request until Sink::onRequestDrained.
  bool requestPaused() const { return request_paused_; }
  // Answers without an upstream (bad request, ...).
  void respondLocal(int status, const std::string& body, const std::string& flag, const http::Headers& extra = {});
  // The downstream went away: stop everything, log.
  void cancel();
  // The downstream drained: resume reading the upstream.
  void resumeUpstream();
  // Activity on the request's stream, either direction (bytes received or
  // flushed): pushes the stream idle timeout back (exchange_idle.cc).
  void touch() { last_activity_ = std::chrono::steady_clock::now(); }

  const http::MessageHead& head() const { return head_; }
  const RequestRecord& record() const { return rec_; }

 private:
  struct Upstream;
  struct H2Attempt;
  bool upstreamSpeaksH2() const;
  void afterFault();
  void startAttempt();
  void acquire();
  void sendRequest();
  // Moves request body bytes to the current attempt (exchange_body.cc).
  void pumpBody();
  void pumpH1();
  size_t readBodyH2(uint8_t* buf, size_t len, bool& eof);
  // Starts a new attempt from the body's first byte; false (and counted)
  // when the body is no longer held whole.
  bool canReplayBody();
  void armRouteTimer();
  void armTryTimer();
  // The stream idle timeout (exchange_idle.cc): the route's idle_timeout,
  // else the Service port's (xDS), else the proxy's stream_idle_timeout.
  void chooseIdleTimeout();
  void armIdleTimer();
  void onStreamIdle();
  void h2Ready(uint64_t id, Result<H2Conn*> conn);
  void sendH2(H2Conn* conn, uint64_t id);
  void releaseH2();
  void attemptFailed(route::AttemptOutcome outcome, const std::string& why);
  // Whether the failed attempt is retried: the route's retry policy, then
  // the cluster's retry budget (takes a slot; over it, counts an overflow).
  bool mayRetry(const route::AttemptOutcome& outcome);
  void onUpstreamHead(http::MessageHead&& head, bool end_stream = false);
  void onUpstreamBody(std::string_view bytes);
  void onUpstreamTrailers(const http::Headers& trailers);
  void respondGrpc(int status, const std::string& message, const http::Headers& extra);
  void onUpstreamComplete();
  void releaseUpstream(bool reusable);
  void finish(int status);
  void releaseRuntime();
  void cancelTimers();
  void outlierResult(bool server_error);

  HttpProxyContext& ctx_;
  const SessionInfo& info_;
  Sink* sink_;
  http::MessageHead head_;
  RequestBody body_;
  bool dispatched_ = false;
  bool request_paused_ = false;
  bool try_wanted_ = false;  // the attempt waits for the request's end to arm its per-try timeout
  route::TimePoint start_;
  RequestRecord rec_;
  std::shared_ptr<const route::RouteTable> routes_;
  route::RouteResult route_;
  TrafficPolicy policy_;
  ConnectionPool limits_;
  route::ClusterRuntime* cluster_ = nullptr;
  bool counted_active_ = false;
  bool counted_pending_ = false;
  route::FaultDecision fault_;
  uint32_t attempts_ = 0;
  uint64_t attempt_seq_ = 0;
  MeshEndpoint endpoint_;
  std::string endpoint_key_;
  bool endpoint_started_ = false;
  ConnectTarget target_;
  std::string pool_key_;
  bool reused_ = false;         // the attempt runs on a pooled connection
  bool stale_retried_ = false;  // one free retry after a pooled connection died under us
  bool retry_slot_ = false;     // the current attempt is a retry holding a cluster retry slot
  bool retry_granted_ = false;  // onUpstreamHead already decided to retry (slot taken)
  bool response_started_ = false;
  bool response_keep_alive_ = true;
  bool finished_ = false;
  std::unique_ptr<Upstream> up_;
  bool grpc_ = false;         // content-type application/grpc*
  bool h2_upstream_ = false;  // the cluster's port speaks HTTP/2 (appProtocol grpc, http2, h2c)
  std::unique_ptr<H2Attempt> h2_;
  uint64_t h2_wait_ = 0;  // the attempt waiting for an HTTP/2 connection
  size_t h2_unconsumed_ = 0;
  bool refused_ = false;  // the failing attempt was refused (never processed)
  uint32_t refused_retries_ = 0;
  EventLoop::TimerId route_timer_ = 0, try_timer_ = 0, delay_timer_ = 0, wait_timer_ = 0, idle_timer_ = 0;
  std::chrono::milliseconds idle_timeout_{0};
  std::chrono::steady_clock::time_point last_activity_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// The current attempt's stream on an HTTP/2 upstream (exchange_h2.cc).
struct Exchange::H2Attempt : H2StreamHandler {
  H2Attempt(Exchange* exchange, uint64_t id) : x(exchange), attempt(id) {}
  Exchange* x;  // nullptr once released
  uint64_t attempt;
  H2Conn* conn = nullptr;  // while the stream is open
  int32_t stream = 0;
  void onH2Head(http::MessageHead&& head, bool end_stream) override;
  void onH2Data(std::string_view bytes) override;
  void onH2Trailers(http::Headers&& trailers) override;
  void onH2End() override;
  void onH2Reset(bool refused, const std::string& why) override;
  size_t readBody(uint8_t* buf, size_t len, bool& eof) override;
  http::Headers requestTrailers() override;
};

// gRPC status code for a local reply's HTTP status, as Envoy maps them
// (503/429/502 -> UNAVAILABLE, 403 -> PERMISSION_DENIED, 404 ->
// UNIMPLEMENTED, 504 -> DEADLINE_EXCEEDED, ... other -> UNKNOWN).
int grpcStatusForHttp(int status);

}  // namespace offcore::mesh::l7
