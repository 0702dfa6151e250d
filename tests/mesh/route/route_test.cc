#include <gtest/gtest.h>

#include <map>
#include <set>

#include "mesh/route/cluster.h"
#include "mesh/route/policy.h"
#include "mesh/route/router.h"

namespace offcore::mesh::route {
namespace {

MeshEndpoint ep(std::string ip, Labels labels = {}, bool healthy = true) {
  MeshEndpoint e;
  e.ip = std::move(ip);
  e.labels = std::move(labels);
  e.healthy = healthy;
  return e;
}

std::shared_ptr<Snapshot> snapshot() {
  auto s = std::make_shared<Snapshot>();
  MeshService web;
  web.name = "web";
  web.vip = "10.96.0.10";
  web.ports = {{"http", 80, 8080, "http"}};
  web.endpoints = {ep("10.1.0.1", {{"version", "v1"}}), ep("10.1.0.2", {{"version", "v2"}}),
                   ep("10.1.0.3", {{"version", "v2"}}, false)};
  MeshService api;
  api.name = "api";
  api.vip = "10.96.0.11";
  api.ports = {{"http", 80, 9090, "http"}};
  api.endpoints = {ep("10.2.0.1")};
  s->services = {web, api};

  VirtualService vs;
  vs.name = "web-routes";
  vs.hosts = {"web.default.svc.cluster.local"};
  HttpRoute by_path;
  by_path.name = "api-path";
  HttpMatch m1;
  m1.uri = StringMatch{StringMatch::Kind::kPrefix, "/api/"};
  by_path.match = {m1};
  by_path.route = {{{"api", "", 0}, 0}};
  HttpRoute by_header;
  HttpMatch m2;
  m2.headers["x-canary"] = StringMatch{StringMatch::Kind::kExact, "yes"};
  HttpMatch m3;
  m3.uri = StringMatch{StringMatch::Kind::kRegex, "/v[0-9]+/beta"};
  by_header.match = {m2, m3};
  by_header.route = {{{"web", "v2", 0}, 0}};
  HttpRoute split;
  split.name = "split";
  split.route = {{{"web", "v1", 0}, 90}, {{"web", "v2", 0}, 10}};
  vs.http = {by_path, by_header, split};
  s->config.virtual_services = {vs};

  DestinationRule dr;
  dr.host = "web";
  dr.traffic_policy.load_balancer = LoadBalancer{LoadBalancer::Simple::kRandom, ""};
  Subset v1{"v1", {{"version", "v1"}}, std::nullopt};
  TrafficPolicy rr;
  rr.load_balancer = LoadBalancer{};
  Subset v2{"v2", {{"version", "v2"}}, rr};
  dr.subsets = {v1, v2};
  s->config.destination_rules = {dr};
  return s;
}

TEST(Router, MatchesPathHeaderRegexAndDefault) {
  auto table = RouteTable::build(snapshot());
  SplitMixRandom rnd(1);
  HeaderList none;
  RequestAttrs r{"web:80", "10.96.0.10", 80, "GET", "/api/users", &none};
  auto res = table->match(r, rnd);
  ASSERT_EQ(res.kind, RouteResult::Kind::kRoute);
  EXPECT_EQ(res.route_name, "web-routes/api-path");
  EXPECT_EQ(res.cluster.str(), "api:80");
  auto eps = table->endpoints(res.cluster);
  ASSERT_EQ(eps.size(), 1u);
  EXPECT_EQ(eps[0].port, 9090);  // the target port

  HeaderList canary = {{"X-Canary", "yes"}};
  r = {"web", "10.96.0.10", 80, "GET", "/", &canary};
  EXPECT_EQ(table->match(r, rnd).cluster.str(), "web|v2:80");
  r = {"", "10.96.0.10", 80, "GET", "/v12/beta", &none};  // no Host: by VIP
  EXPECT_EQ(table->match(r, rnd).cluster.str(), "web|v2:80");
  EXPECT_EQ(table->endpoints({"web", "v2", 80}).size(), 1u);  // the unhealthy one left out

  r = {"api.default.svc.cluster.local", "10.96.0.10", 80, "GET", "/x", &none};
  res = table->match(r, rnd);
  EXPECT_EQ(res.route_name, "default");
  EXPECT_EQ(res.cluster.str(), "api:80");

  r = {"unknown", "192.168.9.9", 8000, "GET", "/", &none};
  EXPECT_EQ(table->match(r, rnd).kind, RouteResult::Kind::kPassthrough);
  r = {"unknown", "", 0, "GET", "/", &none};
  EXPECT_EQ(table->match(r, rnd).kind, RouteResult::Kind::kNoRoute);
}

TEST(Router, WeightedSplitAndSubsetPolicy) {
  auto table = RouteTable::build(snapshot());
  SplitMixRandom rnd(42);
  HeaderList none;
  std::map<std::string, int> n;
  for (int i = 0; i < 10000; ++i) n[table->match({"web", "", 80, "GET", "/", &none}, rnd).cluster.str()]++;
  EXPECT_NEAR(n["web|v1:80"], 9000, 200);
  EXPECT_NEAR(n["web|v2:80"], 1000, 200);
  EXPECT_EQ(table->policy({"web", "v1", 80}).load_balancer->simple, LoadBalancer::Simple::kRandom);
  EXPECT_EQ(table->policy({"web", "v2", 80}).load_balancer->simple, LoadBalancer::Simple::kRoundRobin);
}

TEST(Cluster, BalancersSpreadAndHashSticks) {
  std::vector<MeshEndpoint> eps = {ep("a"), ep("b"), ep("c")};
  for (auto& e : eps) e.port = 80;
  ClusterRuntime c;
  SplitMixRandom rnd(7);
  auto now = TimePoint{};
  std::map<size_t, int> rr;
  for (int i = 0; i < 30; ++i) rr[*c.pick(eps, LoadBalancer{}, nullptr, rnd, now)]++;
  EXPECT_EQ(rr[0], 10);
  EXPECT_EQ(rr[2], 10);

  LoadBalancer least{LoadBalancer::Simple::kLeastRequest, ""};
  for (int i = 0; i < 50; ++i) c.requestStarted("a:80");
  int to_a = 0;
  for (int i = 0; i < 300; ++i) to_a += *c.pick(eps, least, nullptr, rnd, now) == 0;
  EXPECT_LT(to_a, 60);  // p2c only picks the busy one when it draws it twice (~1/9)

  LoadBalancer hash{LoadBalancer::Simple::kRoundRobin, "x-user"};
  std::string alice = "alice", bob = "bob";
  size_t first = *c.pick(eps, hash, &alice, rnd, now);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(*c.pick(eps, hash, &alice, rnd, now), first);
  std::set<size_t> spread;
  for (int i = 0; i < 50; ++i) {
    std::string k = "user" + std::to_string(i);
    spread.insert(*c.pick(eps, hash, &k, rnd, now));
  }
  EXPECT_EQ(spread.size(), 3u);
}

TEST(Cluster, OutlierEjectionWithGrowingTimeAndCap) {
  ClusterRuntime c;
  OutlierDetection od;
  od.consecutive_5xx_errors = 3;
  od.base_ejection_time = Millis(1000);
  od.max_ejection_percent = 50;
  auto t0 = TimePoint{} + std::chrono::hours(1);
  EXPECT_FALSE(c.onResult("a", true, od, 4, t0));
  EXPECT_FALSE(c.onResult("a", true, od, 4, t0));
  EXPECT_FALSE(c.onResult("a", false, od, 4, t0));  // a success resets the streak
  EXPECT_FALSE(c.onResult("a", true, od, 4, t0));
  EXPECT_FALSE(c.onResult("a", true, od, 4, t0));
  EXPECT_TRUE(c.onResult("a", true, od, 4, t0));
  EXPECT_TRUE(c.ejected("a", t0 + Millis(999)));
  EXPECT_FALSE(c.ejected("a", t0 + Millis(1000)));
  std::vector<MeshEndpoint> eps = {ep("a"), ep("b")};
  for (auto& e : eps) e.port = 0;
  // Ejected a second time: twice as long.
  auto t1 = t0 + Millis(2000);
  for (int i = 0; i < 3; ++i) c.onResult("a", true, od, 4, t1);
  EXPECT_TRUE(c.ejected("a", t1 + Millis(1999)));
  for (int i = 0; i < 3; ++i) c.onResult("b", true, od, 4, t1);
  EXPECT_TRUE(c.ejected("b", t1));
  for (int i = 0; i < 3; ++i) c.onResult("c", true, od, 4, t1);
  EXPECT_FALSE(c.ejected("c", t1));  // 50% of 4 already ejected
  SplitMixRandom rnd(1);
  std::vector<MeshEndpoint> ab = {ep("a"), ep("b")};
  ab[0].port = ab[1].port = 0;
  ClusterRuntime d;
  for (int i = 0; i < 3; ++i) d.onResult("a:0", true, od, 2, t1);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(*d.pick(ab, LoadBalancer{}, nullptr, rnd, t1), 1u);
  EXPECT_EQ(c.counters().ejections, 3u);
}

TEST(Cluster, CircuitBreakerLimits) {
  ClusterRuntime c;
  ConnectionPool pool;
  pool.http2_max_requests = 2;
  pool.max_connections = 1;
  pool.http1_max_pending_requests = 0;
  EXPECT_TRUE(c.requestAllowed(pool));
  c.counters().active_requests = 2;
  EXPECT_FALSE(c.requestAllowed(pool));
  c.counters().connections = 1;
  EXPECT_FALSE(c.connectAllowed(pool));
  EXPECT_FALSE(c.queueAllowed(pool));
}

struct FixedRandom : Random {
  std::vector<uint64_t> values;
  size_t i = 0;
  uint64_t next() override { return values[i++ % values.size()]; }
};

TEST(Policy, FaultsByPercent) {
  HttpRoute r;
  r.fault_delay = FaultDelay{50, Millis(300)};
  r.fault_abort = FaultAbort{10, 503};
  SplitMixRandom rnd(3);
  int delays = 0, aborts = 0;
  for (int i = 0; i < 10000; ++i) {
    auto d = decideFault(r, rnd);
    delays += d.delay == Millis(300);
    aborts += d.abort == 503;
  }
  EXPECT_NEAR(delays, 5000, 250);
  EXPECT_NEAR(aborts, 1000, 150);
  EXPECT_EQ(decideFault(HttpRoute{}, rnd).abort, 0);
}

TEST(Policy, RetryDecisions) {
  RetryPolicy p;
  p.attempts = 2;
  p.retry_on = {"5xx"};
  using K = AttemptOutcome::Kind;
  EXPECT_TRUE(shouldRetry(p, 1, {K::kResponse, 503}));
  EXPECT_TRUE(shouldRetry(p, 2, {K::kTimeout, 0}));
  EXPECT_FALSE(shouldRetry(p, 3, {K::kResponse, 503}));  // attempts used up
  EXPECT_FALSE(shouldRetry(p, 1, {K::kResponse, 404}));
  p.retry_on = {"gateway-error"};
  EXPECT_FALSE(shouldRetry(p, 1, {K::kResponse, 500}));
  EXPECT_TRUE(shouldRetry(p, 1, {K::kResponse, 502}));
  p.retry_on = {"connect-failure", "409"};
  EXPECT_TRUE(shouldRetry(p, 1, {K::kConnectFailure, 0}));
  EXPECT_TRUE(shouldRetry(p, 1, {K::kResponse, 409}));
  EXPECT_FALSE(shouldRetry(p, 1, {K::kReset, 0}));
  p.retry_on = {"unavailable", "deadline-exceeded"};
  EXPECT_TRUE(shouldRetry(p, 1, {K::kResponse, 200, 14}));
  EXPECT_TRUE(shouldRetry(p, 1, {K::kResponse, 200, 4}));
  EXPECT_FALSE(shouldRetry(p, 1, {K::kResponse, 200, 7}));
  EXPECT_FALSE(shouldRetry(p, 1, {K::kResponse, 503}));  // no grpc-status
  p.retry_on = {};
  EXPECT_TRUE(shouldRetry(p, 1, {K::kResponse, 503}));
  EXPECT_FALSE(shouldRetry(p, 1, {K::kResponse, 500}));
}

TEST(Policy, AuthorizationDenyFirstThenAllow) {
  AuthorizationPolicy allow;
  allow.name = "allow-frontend";
  allow.ns = "shop";
  allow.selector = {{"app", "web"}};
  AuthzRule rule;
  AuthzSource src;
  src.principals = {"cluster.local/ns/shop/sa/frontend"};
  AuthzOperation op;
  op.methods = {"GET"};
  op.paths = {"/public/*", "*.css", "/exact"};
  rule.from = {src};
  rule.to = {op};
  allow.rules = {rule};
  AuthorizationPolicy deny;
  deny.name = "deny-admin";
  deny.ns = "shop";
  deny.action = AuthorizationPolicy::Action::kDeny;
  AuthzRule drule;
  AuthzOperation dop;
  dop.paths = {"/public/admin*"};
  drule.to = {dop};
  deny.rules = {drule};
  std::vector<AuthorizationPolicy> ps = {allow, deny};
  Labels web = {{"app", "web"}};
  AuthzRequest r{"spiffe://cluster.local/ns/shop/sa/frontend", "shop", "GET", "/public/x", 80};
  EXPECT_TRUE(authorize(ps, "shop", web, r).allowed);
  r.path = "/site.css";
  EXPECT_TRUE(authorize(ps, "shop", web, r).allowed);
  r.path = "/exact";
  EXPECT_TRUE(authorize(ps, "shop", web, r).allowed);
  r.path = "/exact2";
  EXPECT_FALSE(authorize(ps, "shop", web, r).allowed);
  r.path = "/public/admin/x";
  auto d = authorize(ps, "shop", web, r);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.policy, "shop/deny-admin");
  r = {"spiffe://cluster.local/ns/shop/sa/other", "shop", "GET", "/public/x", 80};
  EXPECT_FALSE(authorize(ps, "shop", web, r).allowed);
  r.method = "POST";
  EXPECT_FALSE(authorize(ps, "shop", web, r).allowed);
  // Another workload or namespace: no policy applies.
  EXPECT_TRUE(authorize(ps, "shop", {{"app", "db"}}, r).allowed);
  EXPECT_TRUE(authorize(ps, "other", web, r).allowed);
  // Namespaces and ports.
  AuthorizationPolicy by_ns;
  by_ns.ns = "shop";
  AuthzRule nr;
  AuthzSource ns_src;
  ns_src.namespaces = {"team-*"};
  AuthzOperation port_op;
  port_op.ports = {8080};
  nr.from = {ns_src};
  nr.to = {port_op};
  by_ns.rules = {nr};
  AuthzRequest q{"", "team-a", "GET", "/", 8080};
  EXPECT_TRUE(authorize({by_ns}, "shop", {}, q).allowed);
  q.port = 80;
  EXPECT_FALSE(authorize({by_ns}, "shop", {}, q).allowed);
  EXPECT_EQ(namespaceOf("spiffe://cluster.local/ns/shop/sa/web"), "shop");
}

TEST(Policy, RootNamespacePoliciesApplyMeshWide) {
  // Istio: a policy in the root namespace applies to every namespace; its
  // selector picks workloads anywhere.
  AuthorizationPolicy deny;
  deny.name = "no-debug";
  deny.ns = kMeshRootNamespace;
  deny.action = AuthorizationPolicy::Action::kDeny;
  AuthzRule rule;
  AuthzOperation op;
  op.paths = {"/debug*"};
  rule.to = {op};
  deny.rules = {rule};
  AuthzRequest r{"spiffe://cluster.local/ns/a/sa/x", "a", "GET", "/debug/pprof", 80};
  auto d = authorize({deny}, "shop", {{"app", "web"}}, r);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.policy, std::string(kMeshRootNamespace) + "/no-debug");
  EXPECT_FALSE(authorize({deny}, "other", {}, r).allowed);
  r.path = "/ok";
  EXPECT_TRUE(authorize({deny}, "shop", {}, r).allowed);
  deny.selector = {{"app", "web"}};
  r.path = "/debug";
  EXPECT_FALSE(authorize({deny}, "other", {{"app", "web"}}, r).allowed);
  EXPECT_TRUE(authorize({deny}, "other", {{"app", "db"}}, r).allowed);
  // A policy in an ordinary namespace stays there.
  deny.ns = "shop";
  EXPECT_TRUE(authorize({deny}, "other", {{"app", "web"}}, r).allowed);
}

}  // namespace
}  // namespace offcore::mesh::route
