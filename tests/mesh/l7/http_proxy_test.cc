#include "mesh/l7/http_proxy.h"

#include <gtest/gtest.h>

#include "mesh/l7/http2_session.h"
#include "proxy_fixture.h"

namespace offcore::mesh::l7::testing {
namespace {

// web: v1 at 10.1.0.1, v2 at 10.1.0.2; api at 10.2.0.1.
Snapshot baseSnapshot() {
  Snapshot s;
  s.services = {service("web", "10.96.0.10",
                        {endpoint("10.1.0.1", 8080, {{"version", "v1"}}, "spiffe://cluster.local/ns/shop/sa/web"),
                         endpoint("10.1.0.2", 8080, {{"version", "v2"}}, "spiffe://cluster.local/ns/shop/sa/web")}),
                service("api", "10.96.0.11", {endpoint("10.2.0.1", 8080)})};
  DestinationRule dr;
  dr.host = "web";
  dr.subsets = {{"v1", {{"version", "v1"}}, std::nullopt}, {"v2", {{"version", "v2"}}, std::nullopt}};
  s.config.destination_rules = {dr};
  return s;
}

VirtualService webVs(std::vector<HttpRoute> routes) {
  VirtualService vs;
  vs.name = "web";
  vs.hosts = {"web"};
  vs.http = std::move(routes);
  return vs;
}

std::string header(const Response& r, const std::string& name) {
  const std::string* v = http::findHeader(r.headers, name);
  return v ? *v : "";
}

TEST_F(ProxyTest, RoutesByPathAndHeaderAndDefault) {
  server("10.1.0.1", 8080, "web-v1");
  server("10.1.0.2", 8080, "web-v2");
  server("10.2.0.1", 8080, "api");
  Snapshot s = baseSnapshot();
  HttpRoute by_path = routeTo({dest("api")});
  HttpMatch m;
  m.uri = StringMatch{StringMatch::Kind::kPrefix, "/api/"};
  by_path.match = {m};
  HttpRoute by_header = routeTo({dest("web", "v2")});
  HttpMatch h;
  h.headers["x-canary"] = StringMatch{StringMatch::Kind::kExact, "yes"};
  by_header.match = {h};
  s.config.virtual_services = {webVs({by_path, by_header, routeTo({dest("web", "v1")})})};
  apply(s);
  auto c = client();
  EXPECT_EQ(c->request("/api/x").body, "api");
  EXPECT_EQ(c->request("/", "web", "X-Canary: yes\r\n").body, "web-v2");
  for (int i = 0; i < 5; ++i) EXPECT_EQ(c->request("/").body, "web-v1");
  EXPECT_EQ(c->request("/", "api.default.svc.cluster.local").body, "api");  // no VirtualService: default route
  auto nf = c->request("/", "nosuch");
  EXPECT_EQ(nf.status, 404);
  EXPECT_EQ(sessions.size(), 1u);  // one keep-alive connection for all of it
}

TEST_F(ProxyTest, WeightedSplitWithinFivePercent) {
  auto& v1 = server("10.1.0.1", 8080, "web-v1");
  auto& v2 = server("10.1.0.2", 8080, "web-v2");
  Snapshot s = baseSnapshot();
  s.config.virtual_services = {webVs({routeTo({dest("web", "v1", 80), dest("web", "v2", 20)})})};
  apply(s);
  auto c = client();
  // 2,000 requests, pipelined in batches of 100 on one connection.
  for (int batch = 0; batch < 20; ++batch) {
    std::string raw;
    for (int i = 0; i < 100; ++i) raw += "GET / HTTP/1.1\r\nHost: web\r\n\r\n";
    c->send(raw);
    ASSERT_TRUE(c->waitFor((batch + 1) * 100u, Millis(20000)));
  }
  EXPECT_EQ(v1.hits + v2.hits, 2000);
  EXPECT_NEAR(v2.hits / 2000.0, 0.20, 0.05);
  EXPECT_NEAR(v1.hits / 2000.0, 0.80, 0.05);
}

TEST_F(ProxyTest, RetriesA503ThenSucceeds) {
  auto& v1 = server("10.1.0.1", 8080, "web-v1", [](const http::MessageHead&, int hit) {
    return hit % 2 == 1 ? Reply{503, "busy"} : Reply{200, "ok"};
  });
  Snapshot s = baseSnapshot();
  HttpRoute r = routeTo({dest("web", "v1")});
  r.retries = RetryPolicy{2, Millis(0), {"5xx"}};
  s.config.virtual_services = {webVs({r})};
  apply(s);
  auto c = client();
  auto ok = c->request("/");
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(v1.hits, 2);
  EXPECT_EQ(log.back().retries, 1u);
  // Without the retry policy the 503 reaches the client.
  s.config.virtual_services[0].http[0].retries.reset();
  apply(s);
  EXPECT_EQ(c->request("/").status, 503);
}

TEST_F(ProxyTest, APooledConnectionClosedUnderUsIsRetriedOnceForGet) {
  auto& v1 = server("10.1.0.1", 8080, "web-v1", [](const http::MessageHead&, int hit) {
    Reply r;
    r.drop = hit == 2;  // the upstream gives up on the kept-alive connection
    return r;
  });
  Snapshot s = baseSnapshot();
  s.config.virtual_services = {webVs({routeTo({dest("web", "v1")})})};
  apply(s);
  auto c = client();
  EXPECT_EQ(c->request("/").status, 200);
  EXPECT_EQ(ctx->pool().idle(), 1u);
  EXPECT_EQ(c->request("/").status, 200);  // no retry policy: the free retry did it
  EXPECT_EQ(v1.hits, 3);
}

TEST_F(ProxyTest, PerTryTimeoutRetriesAndRouteTimeoutIs504) {
  server("10.1.0.1", 8080, "web-v1", [](const http::MessageHead&, int hit) {
    return hit == 1 ? Reply{200, "slow", 400} : Reply{200, "fast"};
  });
  server("10.1.0.2", 8080, "web-v2", [](const http::MessageHead&, int) { return Reply{200, "slow", 600}; });
  Snapshot s = baseSnapshot();
  HttpRoute tries = routeTo({dest("web", "v1")});
  HttpMatch m;
  m.uri = StringMatch{StringMatch::Kind::kExact, "/tries"};
  tries.match = {m};
  tries.retries = RetryPolicy{2, Millis(100), {"5xx"}};
  HttpRoute slow = routeTo({dest("web", "v2")});
  slow.timeout = Millis(150);
  s.config.virtual_services = {webVs({tries, slow})};
  apply(s);
  auto c = client();
  auto start = std::chrono::steady_clock::now();
  auto r = c->request("/tries");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "fast");
  EXPECT_LT(std::chrono::steady_clock::now() - start, Millis(380));
  start = std::chrono::steady_clock::now();
  auto t = c->request("/other");
  EXPECT_EQ(t.status, 504);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_GE(took, Millis(140));
  EXPECT_LT(took, Millis(550));
  EXPECT_EQ(log.back().flags, "UT");
}

TEST_F(ProxyTest, CircuitBreakerOverflowIs503) {
  server("10.1.0.1", 8080, "web-v1", [](const http::MessageHead&, int) { return Reply{200, "ok", 200}; });
  Snapshot s = baseSnapshot();
  s.config.virtual_services = {webVs({routeTo({dest("web", "v1")})})};
  ConnectionPool pool;
  pool.http2_max_requests = 1;
  s.config.destination_rules[0].traffic_policy.connection_pool = pool;
  apply(s);
  auto a = client();
  auto b = client();
  a->get("/");
  runUntil(
      loop, [] { return false; }, Millis(30));
  b->get("/");
  ASSERT_TRUE(b->waitFor(1));
  EXPECT_EQ(b->responses[0].status, 503);
  EXPECT_EQ(header(b->responses[0], "x-offcore-overloaded"), "true");
  ASSERT_TRUE(a->waitFor(1));
  EXPECT_EQ(a->responses[0].status, 200);
  EXPECT_EQ(ctx->cluster("web|v1:80").counters().overflows, 1u);
  EXPECT_EQ(b->request("/").status, 200);  // the limit frees up
}

TEST_F(ProxyTest, OutlierEjectionStopsTrafficToA5xxEndpoint) {
  auto& bad = server("10.1.0.1", 8080, "bad", [](const http::MessageHead&, int) { return Reply{500, "no"}; });
  auto& good = server("10.1.0.2", 8080, "good");
  Snapshot s = baseSnapshot();
  OutlierDetection od;
  od.consecutive_5xx_errors = 3;
  od.max_ejection_percent = 50;
  s.config.destination_rules[0].traffic_policy.outlier_detection = od;
  apply(s);
  auto c = client();
  for (int i = 0; i < 40; ++i) c->request("/");
  EXPECT_EQ(bad.hits, 3);  // round robin: 3 errors, then ejected for 30 s
  EXPECT_EQ(good.hits, 37);
}

TEST_F(ProxyTest, FaultDelayAndAbort) {
  auto& v1 = server("10.1.0.1", 8080, "web-v1");
  Snapshot s = baseSnapshot();
  HttpRoute delayed = routeTo({dest("web", "v1")});
  HttpMatch m;
  m.uri = StringMatch{StringMatch::Kind::kExact, "/delay"};
  delayed.match = {m};
  delayed.fault_delay = FaultDelay{100, Millis(200)};
  HttpRoute aborted = routeTo({dest("web", "v1")});
  aborted.fault_abort = FaultAbort{100, 418};
  s.config.virtual_services = {webVs({delayed, aborted})};
  apply(s);
  auto c = client();
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(c->request("/delay").status, 200);
  EXPECT_GE(std::chrono::steady_clock::now() - start, Millis(195));
  EXPECT_EQ(c->request("/x").status, 418);
  EXPECT_EQ(v1.hits, 1);
}

TEST_F(ProxyTest, AuthorizationAllowAndDeny) {
  server("10.1.0.1", 8080, "web-v1");
  server("10.1.0.2", 8080, "web-v2");
  Snapshot s = baseSnapshot();
  AuthorizationPolicy allow;
  allow.name = "frontend-get";
  allow.ns = "shop";
  AuthzRule rule;
  AuthzSource src;
  src.principals = {"cluster.local/ns/shop/sa/frontend"};
  AuthzOperation op;
  op.methods = {"GET"};
  rule.from = {src};
  rule.to = {op};
  allow.rules = {rule};
  AuthorizationPolicy deny;
  deny.name = "no-admin";
  deny.ns = "shop";
  deny.action = AuthorizationPolicy::Action::kDeny;
  AuthzRule drule;
  AuthzOperation dop;
  dop.paths = {"/admin*"};
  drule.to = {dop};
  deny.rules = {drule};
  s.config.authorization_policies = {allow, deny};
  apply(s);
  info.source_identity = "spiffe://cluster.local/ns/shop/sa/frontend";
  auto c = client();
  EXPECT_EQ(c->request("/").status, 200);
  EXPECT_EQ(c->request("/admin/x").status, 403);
  c->send("POST / HTTP/1.1\r\nHost: web\r\nContent-Length: 2\r\n\r\nhi");
  ASSERT_TRUE(c->waitFor(3));
  EXPECT_EQ(c->responses[2].status, 403);
  info.source_identity = "spiffe://cluster.local/ns/shop/sa/intruder";
  auto d = client();
  EXPECT_EQ(d->request("/").status, 403);
  EXPECT_EQ(log.back().flags, "RBAC");
}

TEST_F(ProxyTest, SmugglingAndOversizedHeadersAre4xxAndTheProxySurvives) {
  auto& v1 = server("10.1.0.1", 8080, "web-v1");
  auto& v2 = server("10.1.0.2", 8080, "web-v2");
  Snapshot s = baseSnapshot();
  apply(s);
  std::vector<std::pair<std::string, int>> cases = {
      {"POST / HTTP/1.1\r\nHost: web\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
       "GET /smuggled HTTP/1.1\r\nHost: web\r\n\r\n",
       400},
      {"POST / HTTP/1.1\r\nHost: web\r\nContent-Length: 3\r\nContent-Length: 40\r\n\r\nabc", 400},
      {"POST / HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nHost: web\r\nX-Big: " + std::string(70000, 'a') + "\r\n\r\n", 431},
  };
  for (const auto& [raw, status] : cases) {
    auto c = client();
    c->send(raw);
    ASSERT_TRUE(c->waitFor(1));
    EXPECT_EQ(c->responses[0].status, status);
    EXPECT_TRUE(runUntil(loop, [&] { return c->closed; }));  // no resync after a framing error
  }
  // No request completed upstream, the smuggled GET included (the bad chunk
  // came after the head was streamed upstream: that attempt was reset).
  EXPECT_EQ(v1.hits + v2.hits, 0);
  auto ok = client();
  EXPECT_EQ(ok->request("/").status, 200);
}

TEST_F(ProxyTest, PipelinedInOrderChunkedBodiesAndConfigSwap) {
  server("10.1.0.1", 8080, "web-v1");
  server("10.1.0.2", 8080, "web-v2");
  Snapshot s = baseSnapshot();
  s.config.virtual_services = {webVs({routeTo({dest("web", "v1")})})};
  apply(s);
  auto c = client();
  c->send(
      "GET /1 HTTP/1.1\r\nHost: web\r\n\r\nPOST /2 HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nabc\r\n0\r\n\r\nGET /3 HTTP/1.1\r\nHost: nosuch\r\n\r\n");
  ASSERT_TRUE(c->waitFor(3));
  EXPECT_EQ(c->responses[0].status, 200);
  EXPECT_EQ(c->responses[1].status, 200);
  EXPECT_EQ(c->responses[2].status, 404);
  EXPECT_EQ(log[1].request_bytes, 3u);
  // A new config applies to the next request on the same connection.
  s.config.virtual_services = {webVs({routeTo({dest("web", "v2")})})};
  apply(s);
  EXPECT_EQ(c->request("/").body, "web-v2");
  EXPECT_FALSE(c->closed);
}

TEST_F(ProxyTest, ASlowClientPausesTheUpstreamInsteadOfGrowingMemory) {
  constexpr size_t size = 32u << 20;
  auto& v1 = server("10.1.0.1", 8080, "web-v1", [](const http::MessageHead&, int) {
    return Reply{200, std::string(size, 'x')};
  });
  apply(baseSnapshot());
  auto c = client();
  c->pause(true);
  c->get("/big");
  runUntil(
      loop, [] { return false; }, Millis(2000));  // without backpressure the proxy takes it all by then
  // The proxy holds at most ~1 MiB plus what the socket buffers take (up to
  // ~12 MiB on loopback here); the rest waits at the server. Without
  // backpressure the proxy reads all 32 MiB within the 2 s.
  EXPECT_GT(v1.pendingOut(), size / 4);
  c->pause(false);
  ASSERT_TRUE(c->waitFor(1, Millis(20000)));
  EXPECT_EQ(c->responses[0].body.size(), size);
}

TEST_F(ProxyTest, Http10ClientGetsItsAnswerAndAClose) {
  server("10.1.0.1", 8080, "web-v1");
  apply(baseSnapshot());
  auto c = client();
  c->send("GET / HTTP/1.0\r\nHost: web\r\n\r\n");
  ASSERT_TRUE(c->waitFor(1));
  EXPECT_EQ(c->responses[0].status, 200);
  EXPECT_EQ(header(c->responses[0], "connection"), "close");
  EXPECT_TRUE(runUntil(loop, [&] { return c->closed; }));
}

TEST_F(ProxyTest, BytesASnifferAlreadyReadAreParsedFirst) {
  server("10.1.0.1", 8080, "web-v1");
  apply(baseSnapshot());
  // A sniffer took "GET / HT" off the connection before choosing HTTP/1.1.
  std::unique_ptr<TcpListener> sniffing;
  auto l = TcpListener::listen(loop, "127.0.0.1", 0, {}, [this](std::unique_ptr<Transport> t) {
    auto s = std::make_unique<HttpSession>(
        *ctx, std::move(t), info, [this](HttpSession* done) { loop.post([this, done] { sessions.erase(done); }); },
        "GET / HT");
    sessions[s.get()] = std::move(s);
  });
  ASSERT_TRUE(l.ok());
  Client c(loop, (*l)->port());
  c.send("TP/1.1\r\nHost: web\r\n\r\n");
  ASSERT_TRUE(c.waitFor(1));
  EXPECT_EQ(c.responses[0].status, 200);
  EXPECT_EQ(looksLikeHttp2("PRI * HTTP/2.0\r\n"), true);
  EXPECT_EQ(looksLikeHttp2("GET / HTTP/1.1\r\n"), false);
}

TEST_F(ProxyTest, StatsAccessLogAndConnectTarget) {
  server("10.1.0.1", 8080, "web-v1");
  Snapshot s = baseSnapshot();
  s.services[0].endpoints.resize(1);
  s.services[0].endpoints[0].mesh = true;
  s.services[0].endpoints[0].node = "node-b";
  s.services[0].endpoints[0].node_ip = "192.168.50.2";
  apply(s);
  info.source_ip = "10.1.9.9";
  info.source_identity = "spiffe://cluster.local/ns/shop/sa/frontend";
  info.source_workload = "frontend";
  auto c = client();
  EXPECT_EQ(c->request("/hello").status, 200);
  ASSERT_FALSE(connector.seen.empty());
  EXPECT_EQ(connector.seen[0].node_ip, "192.168.50.2");  // remote mesh endpoint: through HBONE
  EXPECT_EQ(connector.seen[0].peer_identity, "spiffe://cluster.local/ns/shop/sa/web");
  EXPECT_EQ(connector.seen[0].source_ip, "10.1.9.9");
  EXPECT_EQ(connector.seen[0].source_identity, info.source_identity);
  MetricsRegistry::Labels l = {{"route", "default"},
                               {"cluster", "web:80"},
                               {"source_workload", "frontend"},
                               {"destination_workload", "web"},
                               {"response_code", "200"}};
  EXPECT_EQ(metrics.get("offcore_mesh_requests_total", l), 1);
  EXPECT_NE(metrics.renderText().find("offcore_mesh_request_duration_ms_bucket"), std::string::npos);
  std::string line = accessLogJson(log.back());
  EXPECT_NE(line.find("\"path\":\"/hello\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"upstream_host\":\"10.1.0.1:8080\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"status\":200"), std::string::npos) << line;
}

}  // namespace
}  // namespace offcore::mesh::l7::testing
