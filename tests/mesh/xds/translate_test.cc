#include "mesh/xds/translate.h"

#include <gtest/gtest.h>

#include "xds_test_util.h"

namespace offcore::mesh::xds {
namespace {

using namespace testing;
const std::string kV1 = "outbound|80|v1|web.default.svc.cluster.local";
const std::string kV2 = "outbound|80|v2|web.default.svc.cluster.local";
const std::string kAll = "outbound|80||web.default.svc.cluster.local";

TEST(XdsTranslate, IstioClusterNames) {
  auto d = parseClusterName("outbound|8080|canary|reviews.prod.svc.cluster.local");
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_EQ(*d, (Destination{"reviews", "canary", 8080}));
  EXPECT_EQ(*parseClusterName("outbound|80||web"), (Destination{"web", "", 80}));
  EXPECT_EQ(*parseClusterName("web"), (Destination{"web", "", 0}));
  EXPECT_FALSE(parseClusterName("inbound|80||web").ok());
  EXPECT_FALSE(parseClusterName("outbound|http||web").ok());
  EXPECT_FALSE(parseClusterName("outbound|70000||web").ok());
  EXPECT_FALSE(parseClusterName("outbound|80|v1").ok());
  EXPECT_FALSE(parseClusterName("").ok());
}

TEST(XdsTranslate, ListenersAreServicePorts) {
  auto h = translateListener(httpListener("10.96.0.10", 80, "web:80"));
  ASSERT_TRUE(h.ok()) << h.error().message;
  EXPECT_TRUE(h->http);
  EXPECT_EQ(h->vip, "10.96.0.10");
  EXPECT_EQ(h->port, 80);
  EXPECT_EQ(h->rds_name, "web:80");
  auto t = translateListener(tcpListener("0.0.0.0", 5432, "outbound|5432||db"));
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_FALSE(t->http);
  EXPECT_EQ(t->vip, "");
  EXPECT_EQ(t->tcp_cluster, "outbound|5432||db");
}

TEST(XdsTranslate, UnsupportedListenerFiltersAreErrors) {
  auto l = httpListener("10.96.0.10", 80, "web:80");
  // Any other filter type (here a Cluster standing in for, say, a Redis
  // proxy) is refused by name.
  l.mutable_filter_chains(0)->mutable_filters(0)->mutable_typed_config()->PackFrom(edsCluster("x"));
  auto r = translateListener(l);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("envoy.config.cluster.v3.Cluster is not supported"), std::string::npos)
      << r.error().message;
  auto two = httpListener("10.96.0.10", 80, "web:80");
  *two.add_filter_chains() = two.filter_chains(0);
  EXPECT_FALSE(translateListener(two).ok());
  auto noport = httpListener("10.96.0.10", 0, "web:80");
  EXPECT_FALSE(translateListener(noport).ok());
}

TEST(XdsTranslate, RoutesBecomeVirtualServices) {
  auto vss = translateRoutes(webRoutes(90));
  ASSERT_TRUE(vss.ok()) << vss.error().message;
  ASSERT_EQ(vss->size(), 1u);
  const auto& vs = (*vss)[0];
  EXPECT_EQ(vs.hosts, std::vector<std::string>{"web"});  // FQDN, short, host:port and IP collapse
  ASSERT_EQ(vs.http.size(), 2u);
  const auto& api = vs.http[0];
  ASSERT_EQ(api.match.size(), 1u);
  EXPECT_EQ(api.match[0].uri, (StringMatch{StringMatch::Kind::kPrefix, "/api"}));
  EXPECT_EQ(api.match[0].headers.at("x-canary"), (StringMatch{StringMatch::Kind::kExact, "1"}));
  EXPECT_EQ(api.route, (std::vector<RouteDestination>{{{"web", "v2", 80}, 0}}));
  const auto& def = vs.http[1];
  EXPECT_TRUE(def.match.empty());  // prefix "/" matches everything
  EXPECT_EQ(def.route, (std::vector<RouteDestination>{{{"web", "v1", 80}, 90}, {{"web", "v2", 80}, 10}}));
  EXPECT_EQ(def.timeout, Millis(2000));
  ASSERT_TRUE(def.retries);
  EXPECT_EQ(def.retries->attempts, 3u);
  EXPECT_EQ(def.retries->per_try_timeout, Millis(250));
  EXPECT_EQ(def.retries->retry_on, (std::vector<std::string>{"5xx", "connect-failure"}));
}

TEST(XdsTranslate, PathRegexAuthorityAndMethod) {
  auto rc = webRoutes();
  auto* m = rc.mutable_virtual_hosts(0)->mutable_routes(0)->mutable_match();
  m->set_path("/exact");
  auto* a = m->add_headers();
  a->set_name(":authority");
  a->set_prefix_match("web");
  auto* meth = m->add_headers();
  meth->set_name(":method");
  meth->set_exact_match("GET");
  rc.mutable_virtual_hosts(0)->mutable_routes(1)->mutable_match()->mutable_safe_regex()->set_regex("^/v[0-9]+/.*");
  auto vss = translateRoutes(rc);
  ASSERT_TRUE(vss.ok()) << vss.error().message;
  const auto& r0 = (*vss)[0].http[0].match[0];
  EXPECT_EQ(r0.uri, (StringMatch{StringMatch::Kind::kExact, "/exact"}));
  EXPECT_EQ(r0.authority, (StringMatch{StringMatch::Kind::kPrefix, "web"}));
  EXPECT_EQ(r0.method, (StringMatch{StringMatch::Kind::kExact, "GET"}));
  EXPECT_EQ((*vss)[0].http[1].match[0].uri, (StringMatch{StringMatch::Kind::kRegex, "^/v[0-9]+/.*"}));
}

TEST(XdsTranslate, UnsupportedRouteConfigIsAnError) {
  auto redirect = webRoutes();
  redirect.mutable_virtual_hosts(0)->mutable_routes(0)->mutable_redirect();
  EXPECT_FALSE(translateRoutes(redirect).ok());
  auto direct = webRoutes();
  direct.mutable_virtual_hosts(0)->mutable_routes(0)->mutable_direct_response()->set_status(503);
  EXPECT_FALSE(translateRoutes(direct).ok());
  auto invert = webRoutes();
  invert.mutable_virtual_hosts(0)->mutable_routes(0)->mutable_match()->mutable_headers(0)->set_invert_match(true);
  EXPECT_FALSE(translateRoutes(invert).ok());
  auto retry = webRoutes();
  retry.mutable_virtual_hosts(0)->mutable_routes(1)->mutable_route()->mutable_retry_policy()->set_retry_on(
      "5xx,envoy-ratelimited");
  auto r = translateRoutes(retry);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("envoy-ratelimited"), std::string::npos) << r.error().message;
  // A match field outside the subset (query_parameters, 7) would narrow the
  // route: refused rather than ignored.
  auto query = webRoutes();
  query.mutable_virtual_hosts(0)
      ->mutable_routes(0)
      ->mutable_match()
      ->GetReflection()
      ->MutableUnknownFields(query.mutable_virtual_hosts(0)->mutable_routes(0)->mutable_match())
      ->AddLengthDelimited(7, "x");
  EXPECT_FALSE(translateRoutes(query).ok());
  auto wild = webRoutes();
  wild.mutable_virtual_hosts(0)->add_domains("*.example.com");
  EXPECT_FALSE(translateRoutes(wild).ok());
}

TEST(XdsTranslate, ClustersBecomeTrafficPolicy) {
  auto c = edsCluster(kAll);
  c.set_lb_policy(envoy::config::cluster::v3::Cluster::LEAST_REQUEST);
  c.mutable_connect_timeout()->set_seconds(1);
  auto* t = c.mutable_circuit_breakers()->add_thresholds();
  t->mutable_max_connections()->set_value(7);
  t->mutable_max_pending_requests()->set_value(3);
  t->mutable_max_requests()->set_value(11);
  auto* high = c.mutable_circuit_breakers()->add_thresholds();
  high->set_priority(envoy::config::core::v3::HIGH);
  high->mutable_max_connections()->set_value(999);
  c.mutable_outlier_detection()->mutable_consecutive_5xx()->set_value(2);
  c.mutable_outlier_detection()->mutable_base_ejection_time()->set_seconds(5);
  auto tp = translateCluster(c);
  ASSERT_TRUE(tp.ok()) << tp.error().message;
  EXPECT_EQ(tp->load_balancer->simple, LoadBalancer::Simple::kLeastRequest);
  EXPECT_EQ(tp->connection_pool->max_connections, 7u);
  EXPECT_EQ(tp->connection_pool->http1_max_pending_requests, 3u);
  EXPECT_EQ(tp->connection_pool->http2_max_requests, 11u);
  EXPECT_EQ(tp->connection_pool->connect_timeout, Millis(1000));
  EXPECT_EQ(tp->outlier_detection->consecutive_5xx_errors, 2u);
  EXPECT_EQ(tp->outlier_detection->base_ejection_time, Millis(5000));

  auto dns = edsCluster(kAll);
  dns.set_type(envoy::config::cluster::v3::Cluster::STRICT_DNS);
  auto r = translateCluster(dns);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("STRICT_DNS is not supported"), std::string::npos);
  auto maglev = edsCluster(kAll);
  maglev.set_lb_policy(envoy::config::cluster::v3::Cluster::MAGLEV);
  EXPECT_FALSE(translateCluster(maglev).ok());
}

TEST(XdsTranslate, EndpointsWithHealthAndLabels) {
  auto cla = assignment(kAll, {{"10.1.0.2", 8080}, {"10.1.0.3", 8080}});
  cla.mutable_endpoints(0)->mutable_lb_endpoints(1)->set_health_status(envoy::config::core::v3::UNHEALTHY);
  (*cla.mutable_endpoints(0)->mutable_lb_endpoints(0)->mutable_metadata()->mutable_filter_metadata())["istio"]
      .mutable_fields()
      ->
      operator[]("version")
      .set_string_value("v1");
  auto eps = translateEndpoints(cla);
  ASSERT_TRUE(eps.ok()) << eps.error().message;
  ASSERT_EQ(eps->size(), 2u);
  EXPECT_EQ((*eps)[0].ip, "10.1.0.2");
  EXPECT_EQ((*eps)[0].port, 8080);
  EXPECT_TRUE((*eps)[0].healthy);
  EXPECT_EQ((*eps)[0].labels.at("version"), "v1");
  EXPECT_FALSE((*eps)[1].healthy);
}

Resources webResources() {
  Resources r;
  r.listeners["l80"] = httpListener("10.96.0.10", 80, "web:80");
  r.listeners["l5432"] = tcpListener("10.96.0.11", 5432, "outbound|5432||db.default.svc.cluster.local");
  r.routes["web:80"] = webRoutes(90);
  for (const auto& n : {kAll, kV1, kV2, std::string("outbound|5432||db.default.svc.cluster.local")})
    r.clusters[n] = edsCluster(n);
  r.endpoints[kAll] = assignment(kAll, {{"10.1.0.2", 8080}, {"10.1.0.3", 8080}});
  r.endpoints[kV1] = assignment(kV1, {{"10.1.0.2", 8080}});
  r.endpoints[kV2] = assignment(kV2, {{"10.1.0.3", 8080}});
  r.endpoints["outbound|5432||db.default.svc.cluster.local"] =
      assignment("outbound|5432||db.default.svc.cluster.local", {{"10.1.0.4", 5432}});
  return r;
}

TEST(XdsTranslate, WholeSnapshot) {
  auto r = webResources();
  std::string missing;
  ASSERT_TRUE(complete(r, &missing)) << missing;
  auto snap = buildSnapshot(r);
  ASSERT_TRUE(snap.ok()) << snap.error().message;
  ASSERT_EQ(snap->services.size(), 2u);
  const auto& db = snap->services[0];
  EXPECT_EQ(db.name, "db");
  EXPECT_EQ(db.vip, "10.96.0.11");
  EXPECT_EQ(db.ports, (std::vector<MeshServicePort>{{"tcp-5432", 5432, 5432, "tcp"}}));
  const auto& web = snap->services[1];
  EXPECT_EQ(web.vip, "10.96.0.10");
  EXPECT_EQ(web.ports, (std::vector<MeshServicePort>{{"http-80", 80, 8080, "http"}}));
  ASSERT_EQ(web.endpoints.size(), 2u);
  EXPECT_EQ(web.endpoints[0].port, 0);  // the service port's target port
  EXPECT_EQ(web.endpoints[0].labels, (Labels{{subsetLabel("v1"), "true"}}));
  EXPECT_EQ(web.endpoints[1].labels, (Labels{{subsetLabel("v2"), "true"}}));
  ASSERT_EQ(snap->config.destination_rules.size(), 2u);
  const auto& dr = snap->config.destination_rules[1];
  EXPECT_EQ(dr.host, "web");
  ASSERT_EQ(dr.subsets.size(), 2u);
  EXPECT_EQ(dr.subsets[0].name, "v1");
  EXPECT_EQ(dr.subsets[0].labels, (Labels{{subsetLabel("v1"), "true"}}));
  ASSERT_EQ(snap->config.virtual_services.size(), 2u);  // the TCP listener and web:80
  bool tcp_seen = false;
  for (const auto& vs : snap->config.virtual_services)
    if (!vs.tcp.empty()) {
      tcp_seen = true;
      EXPECT_EQ(vs.tcp[0].route[0].destination, (Destination{"db", "", 5432}));
    }
  EXPECT_TRUE(tcp_seen);
}

TEST(XdsTranslate, IncompleteUntilEverythingReferencedIsThere) {
  auto r = webResources();
  std::string missing;
  r.routes.clear();
  EXPECT_FALSE(complete(r, &missing));
  EXPECT_EQ(missing, "route configuration web:80");
  r = webResources();
  r.clusters.erase(kV2);
  EXPECT_FALSE(complete(r, &missing));
  EXPECT_EQ(missing, "cluster " + kV2);
  r = webResources();
  r.endpoints.erase(kV1);
  EXPECT_FALSE(complete(r, &missing));
  EXPECT_EQ(missing, "assignment " + kV1);
  EXPECT_EQ(referencedRoutes(webResources()), std::vector<std::string>{"web:80"});
  EXPECT_EQ(referencedEndpoints(webResources()).size(), 4u);
}

TEST(XdsTranslate, ContradictoryEndpointPortsAreAnError) {
  auto r = webResources();
  r.endpoints[kAll] = assignment(kAll, {{"10.1.0.2", 8080}, {"10.1.0.3", 9090}});
  EXPECT_FALSE(buildSnapshot(r).ok());
}

TEST(XdsTranslate, RetryCircuitBreakerAndRetryBudget) {
  auto c = edsCluster(kAll);
  c.mutable_circuit_breakers()->add_thresholds()->mutable_max_connections()->set_value(5);
  auto tp = translateCluster(c);
  ASSERT_TRUE(tp.ok()) << tp.error().message;
  EXPECT_EQ(tp->connection_pool->max_retries, 3u);  // Envoy's default
  EXPECT_FALSE(tp->retry_budget);

  auto* t = c.mutable_circuit_breakers()->mutable_thresholds(0);
  t->mutable_max_retries()->set_value(1);
  auto* high = c.mutable_circuit_breakers()->add_thresholds();
  high->set_priority(envoy::config::core::v3::HIGH);
  high->mutable_max_retries()->set_value(99);
  high->mutable_retry_budget();
  tp = translateCluster(c);
  ASSERT_TRUE(tp.ok()) << tp.error().message;
  EXPECT_EQ(tp->connection_pool->max_retries, 1u);
  EXPECT_FALSE(tp->retry_budget);  // HIGH priority thresholds are not used

  t->mutable_retry_budget();  // present, empty: Envoy's defaults
  tp = translateCluster(c);
  ASSERT_TRUE(tp.ok()) << tp.error().message;
  EXPECT_EQ(tp->retry_budget, (RetryBudget{20, 3}));
  t->mutable_retry_budget()->mutable_budget_percent()->set_value(37.5);
  t->mutable_retry_budget()->mutable_min_retry_concurrency()->set_value(0);
  tp = translateCluster(c);
  ASSERT_TRUE(tp.ok()) << tp.error().message;
  EXPECT_EQ(tp->retry_budget, (RetryBudget{37.5, 0}));

  // Envoy's field numbers on the wire: Thresholds.retry_budget = 8,
  // RetryBudget.budget_percent = 1, Percent.value = 1 (a double).
  envoy::config::cluster::v3::CircuitBreakers::Thresholds only;
  only.mutable_retry_budget()->mutable_budget_percent()->set_value(37.5);
  std::string wire = only.SerializeAsString();
  ASSERT_EQ(wire.size(), 13u);
  EXPECT_EQ(wire.substr(0, 5), std::string("\x42\x0b\x0a\x09\x09", 5));

  t->mutable_retry_budget()->mutable_budget_interval()->set_seconds(10);
  t->mutable_retry_budget()->mutable_budget_interval()->set_nanos(500000000);
  tp = translateCluster(c);
  ASSERT_TRUE(tp.ok()) << tp.error().message;
  EXPECT_EQ(tp->retry_budget->budget_interval, Millis(10500));
  t->mutable_retry_budget()->mutable_budget_interval()->set_seconds(-1);
  auto r = translateCluster(c);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("budget_interval is negative"), std::string::npos) << r.error().message;
  t->mutable_retry_budget()->clear_budget_interval();
  t->mutable_retry_budget()->mutable_budget_percent()->set_value(150);
  EXPECT_FALSE(translateCluster(c).ok());
}

// Envoy's HttpConnectionManager.stream_idle_timeout (field 24) becomes the
// Service port's; RouteAction.idle_timeout (field 24) the route's (0 = off).
TEST(XdsTranslate, StreamIdleTimeoutAndRouteIdleTimeout) {
  namespace hcm = envoy::extensions::filters::network::http_connection_manager::v3;
  auto r = webResources();
  hcm::HttpConnectionManager h;
  h.mutable_rds()->set_route_config_name("web:80");
  h.mutable_stream_idle_timeout()->set_seconds(30);
  h.mutable_stream_idle_timeout()->set_nanos(500000000);
  r.listeners["l80"].mutable_filter_chains(0)->mutable_filters(0)->mutable_typed_config()->PackFrom(h);
  auto* routes = r.routes["web:80"].mutable_virtual_hosts(0);
  routes->mutable_routes(0)->mutable_route()->mutable_idle_timeout()->set_nanos(250000000);
  routes->mutable_routes(1)->mutable_route()->mutable_idle_timeout();  // present and 0: switched off

  auto info = translateListener(r.listeners["l80"]);
  ASSERT_TRUE(info.ok()) << info.error().message;
  EXPECT_EQ(info->stream_idle_timeout, Millis(30500));
  auto snap = buildSnapshot(r);
  ASSERT_TRUE(snap.ok()) << snap.error().message;
  EXPECT_EQ(snap->services[0].ports[0].stream_idle_timeout, std::nullopt);  // db: a TCP listener
  EXPECT_EQ(snap->services[1].ports[0].stream_idle_timeout, Millis(30500));
  const VirtualService* web = nullptr;
  for (const auto& vs : snap->config.virtual_services)
    if (!vs.http.empty()) web = &vs;
  ASSERT_NE(web, nullptr);
  ASSERT_EQ(web->http.size(), 2u);
  EXPECT_EQ(web->http[0].idle_timeout, Millis(250));
  EXPECT_EQ(web->http[1].idle_timeout, Millis(0));
  routes->mutable_routes(1)->mutable_route()->mutable_idle_timeout()->set_nanos(1000);  // 1 us: on, not off
  auto tiny = translateRoutes(r.routes["web:80"]);
  ASSERT_TRUE(tiny.ok()) << tiny.error().message;
  EXPECT_EQ((*tiny)[0].http[1].idle_timeout, Millis(1));
  auto plain = translateRoutes(webRoutes(90));
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ((*plain)[0].http[0].idle_timeout, std::nullopt);  // absent: the listener's or the proxy's

  // On the wire: field 24, length-delimited (tag 0xc2 0x01), as Envoy's protos number them.
  hcm::HttpConnectionManager only;
  only.mutable_stream_idle_timeout()->set_seconds(1);
  EXPECT_EQ(only.SerializeAsString(), std::string("\xc2\x01\x02\x08\x01", 5));
  envoy::config::route::v3::RouteAction action;
  action.mutable_idle_timeout()->set_seconds(1);
  EXPECT_EQ(action.SerializeAsString(), std::string("\xc2\x01\x02\x08\x01", 5));

  routes->mutable_routes(0)->mutable_route()->mutable_idle_timeout()->set_seconds(-1);
  auto bad = translateRoutes(r.routes["web:80"]);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("idle_timeout is negative"), std::string::npos) << bad.error().message;
  h.mutable_stream_idle_timeout()->set_seconds(-5);
  r.listeners["l80"].mutable_filter_chains(0)->mutable_filters(0)->mutable_typed_config()->PackFrom(h);
  EXPECT_FALSE(translateListener(r.listeners["l80"]).ok());
}

}  // namespace
}  // namespace offcore::mesh::xds
