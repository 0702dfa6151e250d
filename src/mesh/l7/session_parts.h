// HttpSession internals shared by http_proxy.cc and http_proxy_upstream.cc.
#pragma once

#include <memory>
#include <string>

#include "mesh/l7/http_proxy.h"
#include "mesh/route/policy.h"

namespace offcore::mesh::l7 {

struct HttpSession::Request {
  http::MessageHead head;
  std::string body;
  bool too_large = false;
  route::TimePoint start;
  RequestRecord rec;
  std::shared_ptr<const route::RouteTable> routes;
  route::RouteResult route;
  TrafficPolicy policy;
  ConnectionPool limits;
  route::ClusterRuntime* cluster = nullptr;
  bool counted_active = false;  // in cluster->counters().active_requests
  bool counted_pending = false;
  route::FaultDecision fault;
  // The current attempt.
  uint32_t attempts = 0;
  MeshEndpoint endpoint;
  std::string endpoint_key;
  bool endpoint_started = false;  // in the endpoint's active requests
  ConnectTarget target;
  std::string pool_key;
  bool response_started = false;
  bool response_chunked = false;
  bool response_keep_alive = true;
  EventLoop::TimerId route_timer = 0, try_timer = 0, delay_timer = 0, wait_timer = 0;
};

// The upstream side of the current attempt.
struct HttpSession::Upstream : Transport::Callbacks, http::Http1Parser::Callbacks {
  explicit Upstream(HttpSession* session, uint64_t id) : s(session), attempt(id) {}
  HttpSession* s;  // nullptr once released
  uint64_t attempt;
  std::unique_ptr<UpstreamConn> conn;
  http::Http1Parser parser{http::Http1Parser::Kind::kResponse, this};
  bool informational = false;
  bool complete = false;

  void onData(std::string_view bytes) override {
    if (s) parser.feed(bytes);
  }
  void onEnd() override {
    if (!s) return;
    parser.finish();  // ends a read-until-close body
    if (s && !complete) s->attemptFailed({route::AttemptOutcome::Kind::kReset, 0}, "upstream closed early");
  }
  void onClosed(const Status& why) override {
    if (s && !complete)
      s->attemptFailed({route::AttemptOutcome::Kind::kReset, 0},
                       why.ok() ? "upstream closed" : "upstream: " + why.error().message);
  }
  void onDrained() override {}
  void onHead(http::MessageHead&& head) override {
    if (s) s->onUpstreamHead(std::move(head));
  }
  void onBody(std::string_view bytes) override {
    if (s) s->onUpstreamBody(bytes);
  }
  void onComplete() override {
    if (s) s->onUpstreamComplete();
  }
  void onError(int, const std::string& why) override {
    if (s) s->attemptFailed({route::AttemptOutcome::Kind::kReset, 0}, "bad response from upstream: " + why);
  }
};

}  // namespace offcore::mesh::l7
