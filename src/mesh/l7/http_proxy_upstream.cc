// HttpSession: routing a complete request to an upstream, retries, timeouts
// and streaming the response back.
#include "mesh/l7/http_proxy.h"
#include "mesh/l7/session_parts.h"

namespace offcore::mesh::l7 {

using http::MessageHead;
using route::AttemptOutcome;
using route::RouteResult;

namespace {
constexpr size_t kDownstreamHigh = 1 << 20;  // pause the upstream above this much unsent response
constexpr std::chrono::milliseconds kPendingPoll{5};
}  // namespace

void HttpSession::dispatch() {
  Request& r = *req_;
  r.routes = ctx_.routes();
  if (!r.routes) return respondLocal(503, "no mesh configuration yet\n", "NC");
  route::RequestAttrs attrs{r.rec.authority, info_.dst_ip, info_.dst_port, r.head.method, r.head.path, &r.head.headers};
  r.route = r.routes->match(attrs, ctx_.random());
  switch (r.route.kind) {
    case RouteResult::Kind::kNoRoute: return respondLocal(404, r.route.why + "\n", "NR");
    case RouteResult::Kind::kPassthrough:
      r.rec.route = "passthrough";
      r.rec.cluster = "passthrough";
      r.rec.destination_workload = info_.dst_ip;
      break;
    case RouteResult::Kind::kRoute:
      r.rec.route = r.route.route_name;
      r.rec.cluster = r.route.cluster.str();
      r.rec.destination_workload = r.route.cluster.service;
      r.policy = r.routes->policy(r.route.cluster);
      break;
  }
  r.limits = r.policy.connection_pool.value_or(ConnectionPool{});
  r.cluster = &ctx_.cluster(r.rec.cluster);
  if (r.route.route) r.fault = route::decideFault(*r.route.route, ctx_.random());
  if (r.fault.delay.count() > 0) {
    r.delay_timer = ctx_.loop().addTimer(r.fault.delay, [this] {
      req_->delay_timer = 0;
      afterFault();
    });
    return;
  }
  afterFault();
}

void HttpSession::afterFault() {
  Request& r = *req_;
  if (r.fault.abort) return respondLocal(r.fault.abort, "fault filter abort\n", "FI");
  if (!r.cluster->requestAllowed(r.limits)) {
    ++r.cluster->counters().overflows;
    ctx_.stats().overflow(r.rec.cluster);
    return respondLocal(503, "upstream overloaded (max requests)\n", "UO", {{"x-offcore-overloaded", "true"}});
  }
  ++r.cluster->counters().active_requests;
  r.counted_active = true;
  if (r.route.route && r.route.route->timeout.count() > 0) {
    r.route_timer = ctx_.loop().addTimer(r.route.route->timeout, [this] {
      req_->route_timer = 0;
      respondLocal(504, "upstream request timeout\n", "UT");
    });
  }
  startAttempt();
}

void HttpSession::startAttempt() {
  Request& r = *req_;
  ++r.attempts;
  if (r.route.kind == RouteResult::Kind::kPassthrough) {
    r.endpoint = MeshEndpoint{};
    r.endpoint.ip = info_.dst_ip;
    r.endpoint.port = info_.dst_port;
  } else {
    auto eps = r.routes->endpoints(r.route.cluster);
    LoadBalancer lb = r.policy.load_balancer.value_or(LoadBalancer{});
    const std::string* hash = lb.hash_header.empty() ? nullptr : http::findHeader(r.head.headers, lb.hash_header);
    auto idx = eps.empty() ? std::nullopt : r.cluster->pick(eps, lb, hash, ctx_.random(), ctx_.now());
    if (!idx) return respondLocal(503, "no healthy upstream for " + r.rec.cluster + "\n", "UH");
    r.endpoint = eps[*idx];
    const auto& policies = r.routes->snapshot().config.authorization_policies;
    if (!policies.empty()) {
      route::AuthzRequest a{info_.source_identity, info_.source_namespace, r.head.method, r.head.path, r.endpoint.port};
      auto d = route::authorize(policies, route::namespaceOf(r.endpoint.identity), r.endpoint.labels, a);
      if (!d.allowed) return respondLocal(403, "RBAC: access denied\n", "RBAC");
    }
  }
  r.endpoint_key = route::endpointKey(r.endpoint);
  r.rec.upstream_host = r.endpoint_key;
  r.cluster->requestStarted(r.endpoint_key);
  r.endpoint_started = true;
  r.target = ConnectTarget{};
  r.target.ip = r.endpoint.ip;
  r.target.port = r.endpoint.port;
  r.target.source_ip = info_.source_ip;
  r.target.source_identity = info_.source_identity;
  bool remote = !r.endpoint.node.empty() && r.endpoint.node != ctx_.options().local_node;
  if (r.endpoint.mesh && remote) {
    r.target.node_ip = r.endpoint.node_ip;
    r.target.peer_identity = r.endpoint.identity;
  }
  r.pool_key = poolKey(r.target);
  const auto& retries = r.route.route ? r.route.route->retries : std::nullopt;
  if (retries && retries->per_try_timeout.count() > 0) {
    r.try_timer = ctx_.loop().addTimer(retries->per_try_timeout, [this] {
      req_->try_timer = 0;
      attemptFailed({AttemptOutcome::Kind::kTimeout, 0}, "per-try timeout");
    });
  }
  acquire();
}

// An idle pooled connection, a new one within max_connections, or a wait
// (bounded by http1_max_pending_requests) for one of those.
void HttpSession::acquire() {
  Request& r = *req_;
  uint64_t id = ++attempt_seq_;
  if (auto conn = ctx_.pool().take(r.pool_key)) {
    if (r.counted_pending) --r.cluster->counters().pending, r.counted_pending = false;
    up_ = std::make_unique<Upstream>(this, id);
    up_->conn = std::move(conn);
    return sendRequest();
  }
  if (!r.cluster->connectAllowed(r.limits)) {
    if (!r.counted_pending) {
      if (!r.cluster->queueAllowed(r.limits)) {
        ++r.cluster->counters().overflows;
        ctx_.stats().overflow(r.rec.cluster);
        return respondLocal(503, "upstream overloaded (max connections, max pending)\n", "UO",
                            {{"x-offcore-overloaded", "true"}});
      }
      ++r.cluster->counters().pending;
      r.counted_pending = true;
    }
    r.wait_timer = ctx_.loop().addTimer(kPendingPoll, [this] {
      req_->wait_timer = 0;
      acquire();
    });
    return;
  }
  if (r.counted_pending) --r.cluster->counters().pending, r.counted_pending = false;
  ++r.cluster->counters().connections;  // counted while connecting
  route::ClusterRuntime* cluster = r.cluster;
  std::weak_ptr<bool> weak = alive_;
  up_ = std::make_unique<Upstream>(this, id);
  ctx_.connector().connect(r.target, r.limits.connect_timeout,
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

void HttpSession::sendRequest() {
  Request& r = *req_;
  Transport& t = up_->conn->transport();
  t.setCallbacks(up_.get());
  t.pauseReading(false);
  up_->parser.expectNoBody(r.head.method == "HEAD");
  MessageHead h = r.head;
  h.chunked = false;
  if (r.head.chunked || r.head.content_length) h.content_length = r.body.size();
  ++up_->conn->requests;
  t.write(http::serializeRequestHead(h));
  if (!r.body.empty()) t.write(r.body);
}

void HttpSession::attemptFailed(AttemptOutcome outcome, const std::string& why) {
  if (!req_) return;
  Request& r = *req_;
  if (r.try_timer) ctx_.loop().cancelTimer(r.try_timer), r.try_timer = 0;
  releaseUpstream(false);
  if (r.endpoint_started) {
    r.cluster->requestFinished(r.endpoint_key);
    r.endpoint_started = false;
    const auto od = r.policy.outlier_detection.value_or(OutlierDetection{});
    size_t n = r.routes && r.route.kind == RouteResult::Kind::kRoute ? r.routes->endpoints(r.route.cluster).size() : 1;
    if (r.cluster->onResult(r.endpoint_key, true, od, n, ctx_.now())) ctx_.stats().ejection(r.rec.cluster);
  }
  if (r.response_started) {  // mid-body: nothing to retry, tell the client
    r.rec.flags = "UR";
    closeDownstream(true);
    finishRequest(r.rec.status);
    return;
  }
  const auto& retries = r.route.route ? r.route.route->retries : std::nullopt;
  if (retries && route::shouldRetry(*retries, r.attempts, outcome)) {
    ++r.rec.retries;
    return startAttempt();
  }
  using K = AttemptOutcome::Kind;
  switch (outcome.kind) {
    case K::kTimeout: return respondLocal(504, "upstream per-try timeout\n", "UT");
    case K::kConnectFailure: return respondLocal(503, "upstream connect error: " + why + "\n", "UF");
    default: return respondLocal(503, "upstream reset: " + why + "\n", "UR");
  }
}

void HttpSession::onUpstreamHead(MessageHead&& head) {
  Request& r = *req_;
  if (head.status / 100 == 1) {
    up_->informational = true;  // 100 Continue and friends: not forwarded
    return;
  }
  const auto& retries = r.route.route ? r.route.route->retries : std::nullopt;
  if (retries && route::shouldRetry(*retries, r.attempts, {AttemptOutcome::Kind::kResponse, head.status})) {
    return attemptFailed({AttemptOutcome::Kind::kResponse, head.status}, "retriable status");
  }
  if (r.try_timer) ctx_.loop().cancelTimer(r.try_timer), r.try_timer = 0;
  r.response_started = true;
  r.rec.status = head.status;
  r.response_keep_alive = head.keep_alive;
  bool no_body = r.head.method == "HEAD" || head.status == 204 || head.status == 304;
  r.response_chunked = !no_body && (head.chunked || head.until_close);
  http::Headers extra;
  if (closing_) extra.emplace_back("connection", "close");
  if (no_body && head.until_close) head.until_close = false;
  down_->write(http::serializeResponseHead(head, extra));
}

void HttpSession::onUpstreamBody(std::string_view bytes) {
  Request& r = *req_;
  r.rec.response_bytes += bytes.size();
  if (!down_) return;
  down_->write(r.response_chunked ? http::encodeChunk(bytes) : std::string(bytes));
  if (down_->pendingWrite() > kDownstreamHigh && up_ && up_->conn) up_->conn->transport().pauseReading(true);
}

void HttpSession::onUpstreamComplete() {
  Request& r = *req_;
  if (up_->informational) {
    up_->informational = false;
    up_->parser.resume();
    return;
  }
  up_->complete = true;
  if (r.response_chunked && down_) down_->write(http::lastChunk());
  r.cluster->requestFinished(r.endpoint_key);
  r.endpoint_started = false;
  const auto od = r.policy.outlier_detection.value_or(OutlierDetection{});
  size_t n = r.route.kind == RouteResult::Kind::kRoute ? r.routes->endpoints(r.route.cluster).size() : 1;
  if (r.cluster->onResult(r.endpoint_key, r.rec.status >= 500, od, n, ctx_.now())) ctx_.stats().ejection(r.rec.cluster);
  uint32_t max_per_conn = r.limits.max_requests_per_connection;
  bool reusable = r.response_keep_alive && (max_per_conn == 0 || up_->conn->requests < max_per_conn);
  releaseUpstream(reusable);
  finishRequest(r.rec.status);
}

void HttpSession::releaseUpstream(bool reusable) {
  if (!up_) return;
  std::unique_ptr<Upstream> up = std::move(up_);
  up->s = nullptr;
  if (up->conn) {
    up->conn->transport().setCallbacks(nullptr);
    if (reusable && req_) ctx_.pool().put(req_->pool_key, std::move(up->conn));
  }
  // We may be inside this upstream's own callback: destroy it later.
  destroyLater(ctx_.loop(), std::move(up));
}

void HttpSession::releaseRuntime(Request* r) {
  if (!r) r = req_.get();
  if (!r || !r->cluster) return;
  if (r->counted_active) --r->cluster->counters().active_requests, r->counted_active = false;
  if (r->counted_pending) --r->cluster->counters().pending, r->counted_pending = false;
  if (r->endpoint_started) r->cluster->requestFinished(r->endpoint_key), r->endpoint_started = false;
}

void HttpSession::cancelTimers(Request* r) {
  if (!r) r = req_.get();
  if (!r) return;
  for (EventLoop::TimerId* t : {&r->route_timer, &r->try_timer, &r->delay_timer, &r->wait_timer}) {
    if (*t) ctx_.loop().cancelTimer(*t);
    *t = 0;
  }
}

}  // namespace offcore::mesh::l7
