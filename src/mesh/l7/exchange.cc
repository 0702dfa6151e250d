#include "mesh/l7/exchange.h"

#include "mesh/l7/exchange_h1.h"

#include <utility>

namespace offcore::mesh::l7 {

using http::MessageHead;
using route::AttemptOutcome;
using route::RouteResult;

namespace {
constexpr size_t kBacklogHigh = 1 << 20;  // pause the upstream above this much unsent response
constexpr std::chrono::milliseconds kPendingPoll{5};
}  // namespace

Exchange::Exchange(HttpProxyContext& ctx, const SessionInfo& info, Sink* sink)
    : ctx_(ctx), info_(info), sink_(sink), body_(ctx.options().request_buffer_limit), start_(ctx.now()) {
  rec_.start = std::chrono::system_clock::now();
  rec_.source_workload = info_.source_workload;
}

Exchange::~Exchange() {
  *alive_ = false;
  cancelTimers();
  releaseRuntime();
  releaseUpstream(false);
}

void Exchange::begin(MessageHead&& head) {
  start_ = ctx_.now();
  rec_.start = std::chrono::system_clock::now();
  rec_.method = head.method;
  rec_.path = head.path;
  if (const std::string* h = http::findHeader(head.headers, "host")) rec_.authority = *h;
  const std::string* ct = http::findHeader(head.headers, "content-type");
  grpc_ = ct && ct->rfind("application/grpc", 0) == 0;
  head_ = std::move(head);
  idle_timeout_ = ctx_.options().stream_idle_timeout;
  touch();
  armIdleTimer();
}

void Exchange::dispatch() {
  if (dispatched_ || finished_) return;
  dispatched_ = true;
  routes_ = ctx_.routes();
  if (!routes_) return respondLocal(503, "no mesh configuration yet\n", "NC");
  route::RequestAttrs attrs{rec_.authority, info_.dst_ip, info_.dst_port, head_.method, head_.path, &head_.headers};
  route_ = routes_->match(attrs, ctx_.random());
  switch (route_.kind) {
    case RouteResult::Kind::kNoRoute: return respondLocal(404, route_.why + "\n", "NR");
    case RouteResult::Kind::kPassthrough:
      rec_.route = "passthrough";
      rec_.cluster = "passthrough";
      rec_.destination_workload = info_.dst_ip;
      break;
    case RouteResult::Kind::kRoute:
      rec_.route = route_.route_name;
      rec_.cluster = route_.cluster.str();
      rec_.destination_workload = route_.cluster.service;
      policy_ = routes_->policy(route_.cluster);
      break;
  }
  chooseIdleTimeout();
  limits_ = policy_.connection_pool.value_or(ConnectionPool{});
  h2_upstream_ = upstreamSpeaksH2();
  cluster_ = &ctx_.cluster(rec_.cluster);
  if (route_.route) fault_ = route::decideFault(*route_.route, ctx_.random());
  if (fault_.delay.count() > 0) {
    delay_timer_ = ctx_.loop().addTimer(fault_.delay, [this] {
      delay_timer_ = 0;
      afterFault();
    });
    return;
  }
  afterFault();
}

void Exchange::afterFault() {
  if (fault_.abort) return respondLocal(fault_.abort, "fault filter abort\n", "FI");
  if (!cluster_->requestAllowed(limits_)) {
    ++cluster_->counters().overflows;
    ctx_.stats().overflow(rec_.cluster);
    return respondLocal(503, "upstream overloaded (max requests)\n", "UO", {{"x-offcore-overloaded", "true"}});
  }
  ++cluster_->counters().active_requests;
  cluster_->requestAdmitted(policy_.retry_budget, ctx_.now());
  counted_active_ = true;
  armRouteTimer();
  startAttempt();
}

void Exchange::startAttempt() {
  ++attempts_;
  if (route_.kind == RouteResult::Kind::kPassthrough) {
    endpoint_ = MeshEndpoint{};
    endpoint_.ip = info_.dst_ip;
    endpoint_.port = info_.dst_port;
  } else {
    auto eps = routes_->endpoints(route_.cluster);
    LoadBalancer lb = policy_.load_balancer.value_or(LoadBalancer{});
    const std::string* hash = lb.hash_header.empty() ? nullptr : http::findHeader(head_.headers, lb.hash_header);
    auto idx = eps.empty() ? std::nullopt : cluster_->pick(eps, lb, hash, ctx_.random(), ctx_.now());
    if (!idx) return respondLocal(503, "no healthy upstream for " + rec_.cluster + "\n", "UH");
    endpoint_ = eps[*idx];
    const auto& policies = routes_->snapshot().config.authorization_policies;
    if (!policies.empty()) {
      route::AuthzRequest a{info_.source_identity, info_.source_namespace, head_.method, head_.path, endpoint_.port};
      auto d = route::authorize(policies, route::namespaceOf(endpoint_.identity), endpoint_.labels, a);
      if (!d.allowed) return respondLocal(403, "RBAC: access denied\n", "RBAC");
    }
  }
  endpoint_key_ = route::endpointKey(endpoint_);
  rec_.upstream_host = endpoint_key_;
  cluster_->requestStarted(endpoint_key_);
  endpoint_started_ = true;
  target_ = ConnectTarget{};
  target_.ip = endpoint_.ip;
  target_.port = endpoint_.port;
  target_.source_ip = info_.source_ip;
  target_.source_identity = info_.source_identity;
  bool remote = !endpoint_.node.empty() && endpoint_.node != ctx_.options().local_node;
  if (endpoint_.mesh && remote) {
    target_.node_ip = endpoint_.node_ip;
    target_.peer_identity = endpoint_.identity;
  }
  pool_key_ = poolKey(target_);
  try_wanted_ = true;
  armTryTimer();
  acquire();
}

// An idle pooled connection, a new one within max_connections, or a wait
// (bounded by http1_max_pending_requests) for one of those.
void Exchange::acquire() {
  uint64_t id = ++attempt_seq_;
  reused_ = false;
  std::weak_ptr<bool> weak = alive_;
  auto h2_ready = [this, weak, id](Result<H2Conn*> c) {
    if (auto a = weak.lock(); a && *a) h2Ready(id, std::move(c));
  };
  if (h2_upstream_) {
    H2Conn* c = ctx_.h2pool().find(pool_key_);
    if (c || ctx_.h2pool().join(pool_key_, h2_ready)) {
      if (counted_pending_) --cluster_->counters().pending, counted_pending_ = false;
      if (c) return sendH2(c, id);
      h2_wait_ = id;  // a connection being made takes us too
      return;
    }
  } else if (auto conn = ctx_.pool().take(pool_key_)) {
    reused_ = true;
    if (counted_pending_) --cluster_->counters().pending, counted_pending_ = false;
    up_ = std::make_unique<Upstream>(this, id);
    up_->conn = std::move(conn);
    return sendRequest();
  }
  if (!cluster_->connectAllowed(limits_)) {
    if (!counted_pending_) {
      if (!cluster_->queueAllowed(limits_)) {
        ++cluster_->counters().overflows;
        ctx_.stats().overflow(rec_.cluster);
        return respondLocal(503, "upstream overloaded (max connections, max pending)\n", "UO",
                            {{"x-offcore-overloaded", "true"}});
      }
      ++cluster_->counters().pending;
      counted_pending_ = true;
    }
    wait_timer_ = ctx_.loop().addTimer(kPendingPoll, [this] {
      wait_timer_ = 0;
      acquire();
    });
    return;
  }
  if (counted_pending_) --cluster_->counters().pending, counted_pending_ = false;
  ++cluster_->counters().connections;  // counted while connecting
  route::ClusterRuntime* cluster = cluster_;
  if (h2_upstream_) {
    h2_wait_ = id;
    return ctx_.h2pool().connect(pool_key_, ctx_.connector(), target_, limits_.connect_timeout, cluster,
                                 limits_.max_requests_per_connection, h2_ready);
  }
  up_ = std::make_unique<Upstream>(this, id);
  ctx_.connector().connect(target_, limits_.connect_timeout,
                           [this, weak, id, cluster](Result<std::unique_ptr<Transport>> res) {
                             auto a = weak.lock();
                             bool current = a && *a && up_ && up_->attempt == id && !up_->conn;
                             if (!res.ok()) {
                               --cluster->counters().connections;
                               if (current)
                                 attemptFailed({AttemptOutcome::Kind::kConnectFailure, 0}, res.error().message);
                               return;
                             }
                             auto conn = std::make_unique<UpstreamConn>(std::move(*res), cluster, true);
                             if (!current) return;  // abandoned: the connection is closed
                             up_->conn = std::move(conn);
                             sendRequest();
                           });
}

void Exchange::sendRequest() {
  Transport& t = up_->conn->transport();
  t.setCallbacks(up_.get());
  t.pauseReading(false);
  up_->parser.expectNoBody(head_.method == "HEAD");
  body_.rewind();  // a retry starts only while the body is whole (replayBody)
  MessageHead h = head_;
  h.chunked = false;
  h.content_length.reset();
  // Our framing: the client's Content-Length; the whole body's length when
  // it is already here (HTTP/2 requests need not declare one); else chunked,
  // which also carries trailers (HTTP/1.1 has no other place for them).
  bool whole = body_.complete() && body_.trailers().empty();
  if (head_.content_length)
    h.content_length = head_.content_length;
  else if (whole && (head_.chunked || body_.received() > 0))
    h.content_length = body_.received();
  else if (!whole)
    h.chunked = up_->chunked = true;
  ++up_->conn->requests;
  t.write(http::serializeRequestHead(h));
  up_->sending = true;
  pumpH1();
}

void Exchange::outlierResult(bool server_error) {
  if (!endpoint_started_) return;
  cluster_->requestFinished(endpoint_key_);
  endpoint_started_ = false;
  const auto od = policy_.outlier_detection.value_or(OutlierDetection{});
  size_t n = route_.kind == RouteResult::Kind::kRoute ? routes_->endpoints(route_.cluster).size() : 1;
  if (cluster_->onResult(endpoint_key_, server_error, od, n, ctx_.now())) ctx_.stats().ejection(rec_.cluster);
}

void Exchange::attemptFailed(AttemptOutcome outcome, const std::string& why) {
  if (finished_) return;
  if (try_timer_) ctx_.loop().cancelTimer(try_timer_), try_timer_ = 0;
  try_wanted_ = false;
  releaseUpstream(false);
  using K = AttemptOutcome::Kind;
  // Refused by an HTTP/2 upstream (REFUSED_STREAM, GOAWAY): never processed,
  // so retried at once, whatever the method, without blaming the endpoint.
  bool refused = std::exchange(refused_, false);
  if (refused && !response_started_ && refused_retries_ < 3 && canReplayBody()) {
    ++refused_retries_;
    if (endpoint_started_) cluster_->requestFinished(endpoint_key_), endpoint_started_ = false;
    --attempts_;
    return startAttempt();
  }
  // An idle keep-alive connection the upstream closed as we reused it: the
  // request never got there. Try once more on a fresh connection (idempotent
  // methods only), without blaming the endpoint.
  bool idempotent = head_.method == "GET" || head_.method == "HEAD" || head_.method == "OPTIONS" ||
                    head_.method == "PUT" || head_.method == "DELETE";
  if (outcome.kind == K::kReset && reused_ && !response_started_ && !stale_retried_ && idempotent && canReplayBody()) {
    stale_retried_ = true;
    if (endpoint_started_) cluster_->requestFinished(endpoint_key_), endpoint_started_ = false;
    --attempts_;
    return startAttempt();
  }
  outlierResult(true);
  if (response_started_) {  // mid-body: nothing to retry, abort the response
    rec_.flags = "UR";
    sink_->onResponseAbort();
    return finish(rec_.status);
  }
  if (std::exchange(retry_granted_, false) || mayRetry(outcome)) {
    ++rec_.retries;
    return startAttempt();
  }
  switch (outcome.kind) {
    case K::kTimeout: return respondLocal(504, "upstream per-try timeout\n", "UT");
    case K::kConnectFailure: return respondLocal(503, "upstream connect error: " + why + "\n", "UF");
    default: return respondLocal(503, "upstream reset: " + why + "\n", "UR");
  }
}

bool Exchange::mayRetry(const AttemptOutcome& outcome) {
  const auto& retries = route_.route ? route_.route->retries : std::nullopt;
  if (!retries || !route::shouldRetry(*retries, attempts_, outcome)) return false;
  if (!canReplayBody()) return false;  // more than request_buffer_limit already went upstream
  if (retry_slot_) cluster_->retryFinished(), retry_slot_ = false;  // the retried attempt is over
  if (!cluster_->startRetry(limits_, policy_.retry_budget, ctx_.now())) {
    ctx_.stats().retryOverflow(rec_.cluster);
    return false;
  }
  retry_slot_ = true;
  return true;
}

void Exchange::onUpstreamHead(MessageHead&& head, bool end_stream) {
  touch();
  if (up_ && head.status / 100 == 1) {
    up_->informational = true;  // 100 Continue and friends: not forwarded
    return;
  }
  // gRPC retry_on conditions read the grpc-status of a trailers-only response.
  const std::string* g = grpc_ && end_stream ? http::findHeader(head.headers, "grpc-status") : nullptr;
  AttemptOutcome outcome{AttemptOutcome::Kind::kResponse, head.status, g ? std::atoi(g->c_str()) : -1};
  // Over the retry budget, the retriable response itself goes to the client.
  if (mayRetry(outcome)) {
    retry_granted_ = true;
    return attemptFailed(outcome, "retriable status");
  }
  if (try_timer_) ctx_.loop().cancelTimer(try_timer_), try_timer_ = 0;
  try_wanted_ = false;
  response_started_ = true;
  rec_.status = head.status;
  if (const std::string* gs = grpc_ ? http::findHeader(head.headers, "grpc-status") : nullptr) rec_.grpc_status = *gs;
  response_keep_alive_ = head.keep_alive;
  bool no_body = head_.method == "HEAD" || head.status == 204 || head.status == 304 || end_stream;
  sink_->onResponseHead(head, no_body);
}

void Exchange::onUpstreamBody(std::string_view bytes) {
  touch();
  rec_.response_bytes += bytes.size();
  sink_->onResponseBody(bytes);
  bool backlog = sink_->responseBacklog() > kBacklogHigh;
  if (backlog && up_ && up_->conn) up_->conn->transport().pauseReading(true);
  if (h2_) {  // HTTP/2: hold the stream's window closed instead
    h2_unconsumed_ += bytes.size();
    if (!backlog) resumeUpstream();
  }
}

void Exchange::resumeUpstream() {
  if (up_ && up_->conn) up_->conn->transport().pauseReading(false);
  if (h2_ && h2_->conn && h2_unconsumed_ && sink_->responseBacklog() <= kBacklogHigh)
    h2_->conn->consume(h2_->stream, std::exchange(h2_unconsumed_, 0));
}

void Exchange::onUpstreamComplete() {
  if (h2_) {
    outlierResult(rec_.status >= 500);
    releaseUpstream(false);
    sink_->onResponseEnd();
    return finish(rec_.status);
  }
  if (up_->informational) {
    up_->informational = false;
    up_->parser.resume();
    return;
  }
  up_->complete = true;
  outlierResult(rec_.status >= 500);
  uint32_t max_per_conn = limits_.max_requests_per_connection;
  // A response that came before the end of our request: the connection is mid-request.
  bool reusable = response_keep_alive_ && up_->body_done && (max_per_conn == 0 || up_->conn->requests < max_per_conn);
  releaseUpstream(reusable);
  sink_->onResponseEnd();
  finish(rec_.status);
}

void Exchange::respondLocal(int status, const std::string& body, const std::string& flag, const http::Headers& extra) {
  if (finished_) return;
  releaseUpstream(false);
  rec_.flags = flag;
  if (response_started_) {
    sink_->onResponseAbort();
    return finish(status);
  }
  response_started_ = true;
  if (grpc_) return respondGrpc(status, body, extra);
  MessageHead h;
  h.status = status;
  h.reason = http::reasonPhrase(status);
  h.headers = extra;
  h.headers.emplace_back("content-type", "text/plain");
  h.content_length = body.size();
  sink_->onResponseHead(h, false);
  sink_->onResponseBody(body);
  sink_->onResponseEnd();
  finish(status);
}

void Exchange::cancel() {
  if (finished_) return;
  if (rec_.flags.empty()) rec_.flags = "DC";  // the downstream went away
  finish(rec_.status);
}

void Exchange::finish(int status) {
  if (finished_) return;
  finished_ = true;
  releaseUpstream(false);
  body_.clear();
  cancelTimers();
  releaseRuntime();
  rec_.status = status;
  rec_.duration_ms = std::chrono::duration<double, std::milli>(ctx_.now() - start_).count();
  ctx_.log(rec_);
  sink_->onExchangeDone(this);
}

void Exchange::releaseUpstream(bool reusable) {
  h2_wait_ = 0;
  if (h2_) releaseH2();
  if (!up_) return;
  std::unique_ptr<Upstream> up = std::move(up_);
  up->x = nullptr;
  if (up->conn) {
    up->conn->transport().setCallbacks(nullptr);
    if (reusable) ctx_.pool().put(pool_key_, std::move(up->conn));
  }
  // We may be inside this upstream's own callback: destroy it later.
  destroyLater(ctx_.loop(), std::move(up));
}

void Exchange::releaseRuntime() {
  if (!cluster_) return;
  if (counted_active_) --cluster_->counters().active_requests, counted_active_ = false;
  if (counted_pending_) --cluster_->counters().pending, counted_pending_ = false;
  if (endpoint_started_) cluster_->requestFinished(endpoint_key_), endpoint_started_ = false;
  if (retry_slot_) cluster_->retryFinished(), retry_slot_ = false;
}

void Exchange::cancelTimers() {
  for (EventLoop::TimerId* t : {&route_timer_, &try_timer_, &delay_timer_, &wait_timer_, &idle_timer_}) {
    if (*t) ctx_.loop().cancelTimer(*t);
    *t = 0;
  }
}

}  // namespace offcore::mesh::l7
