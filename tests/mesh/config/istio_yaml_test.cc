#include "mesh/config/istio_yaml.h"

#include <gtest/gtest.h>

namespace offcore::mesh {
namespace {

const char* kAll = R"(apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: web
  namespace: shop
spec:
  hosts: [web.shop.svc.cluster.local]
  http:
  - name: canary
    match:
    - uri: {prefix: /api}
      method: {exact: GET}
      headers:
        X-User: {regex: "^a.*"}
      port: 80
    route:
    - destination: {host: web, subset: v1, port: {number: 80}}
      weight: 90
    - destination: {host: web, subset: v2}
      weight: 10
    timeout: 2s
    retries: {attempts: 3, perTryTimeout: 500ms, retryOn: "5xx,connect-failure"}
    fault:
      delay: {percentage: {value: 12.5}, fixedDelay: 1.5s}
      abort: {percentage: {value: 1}, httpStatus: 503}
  - route:
    - destination: {host: web}
  tcp:
  - match: [{port: 5432}, {port: 5433}]
    route:
    - destination: {host: db}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web}
spec:
  host: web
  trafficPolicy:
    loadBalancer: {consistentHash: {httpHeaderName: X-User}}
    connectionPool:
      tcp: {maxConnections: 10, connectTimeout: 300ms}
      http: {http1MaxPendingRequests: 5, http2MaxRequests: 7, maxRequestsPerConnection: 1}
    outlierDetection: {consecutive5xxErrors: 3, interval: 1s, baseEjectionTime: 1m, maxEjectionPercent: 50}
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      loadBalancer: {simple: LEAST_REQUEST}
---
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: {name: strict, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  mtls: {mode: STRICT}
  portLevelMtls:
    "8080": {mode: PERMISSIVE}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-get}
spec:
  action: DENY
  rules:
  - from:
    - source: {principals: [cluster.local/ns/shop/sa/front], notNamespaces: [evil]}
    to:
    - operation: {methods: [GET], paths: [/api*], ports: ["8080"], notPorts: [9090]}
)";

TEST(IstioYamlTest, EverySupportedFieldLandsInTheModel) {
  auto r = parseMeshYaml(kAll, "all.yaml");
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->virtual_services.size(), 1u);
  const auto& vs = r->virtual_services[0];
  EXPECT_EQ(vs.name, "web");
  EXPECT_EQ(vs.ns, "shop");
  EXPECT_EQ(vs.hosts, std::vector<std::string>{"web"});
  ASSERT_EQ(vs.http.size(), 2u);
  const auto& h = vs.http[0];
  EXPECT_EQ(h.name, "canary");
  ASSERT_EQ(h.match.size(), 1u);
  EXPECT_EQ(h.match[0].uri, (StringMatch{StringMatch::Kind::kPrefix, "/api"}));
  EXPECT_EQ(h.match[0].method, (StringMatch{StringMatch::Kind::kExact, "GET"}));
  EXPECT_EQ(h.match[0].headers.at("x-user"), (StringMatch{StringMatch::Kind::kRegex, "^a.*"}));
  EXPECT_EQ(h.match[0].port, 80);
  ASSERT_EQ(h.route.size(), 2u);
  EXPECT_EQ(h.route[0].destination, (Destination{"web", "v1", 80}));
  EXPECT_EQ(h.route[0].weight, 90u);
  EXPECT_EQ(h.route[1].weight, 10u);
  EXPECT_EQ(h.timeout, Millis(2000));
  ASSERT_TRUE(h.retries);
  EXPECT_EQ(h.retries->attempts, 3u);
  EXPECT_EQ(h.retries->per_try_timeout, Millis(500));
  EXPECT_EQ(h.retries->retry_on, (std::vector<std::string>{"5xx", "connect-failure"}));
  ASSERT_TRUE(h.fault_delay && h.fault_abort);
  EXPECT_DOUBLE_EQ(h.fault_delay->percent, 12.5);
  EXPECT_EQ(h.fault_delay->fixed_delay, Millis(1500));
  EXPECT_EQ(h.fault_abort->http_status, 503);
  EXPECT_EQ(vs.http[1].route[0].weight, 0u);
  ASSERT_EQ(vs.tcp.size(), 2u);
  EXPECT_EQ(vs.tcp[1].port, 5433);
  EXPECT_EQ(vs.tcp[1].route[0].destination.host, "db");

  const auto& dr = r->destination_rules.at(0);
  EXPECT_EQ(dr.ns, "default");
  EXPECT_EQ(dr.traffic_policy.load_balancer->hash_header, "x-user");
  EXPECT_EQ(dr.traffic_policy.connection_pool->max_connections, 10u);
  EXPECT_EQ(dr.traffic_policy.connection_pool->connect_timeout, Millis(300));
  EXPECT_EQ(dr.traffic_policy.connection_pool->http2_max_requests, 7u);
  EXPECT_EQ(dr.traffic_policy.connection_pool->max_requests_per_connection, 1u);
  EXPECT_EQ(dr.traffic_policy.outlier_detection->base_ejection_time, Millis(60000));
  EXPECT_EQ(dr.traffic_policy.outlier_detection->max_ejection_percent, 50u);
  ASSERT_EQ(dr.subsets.size(), 2u);
  EXPECT_EQ(dr.subsets[1].labels.at("version"), "v2");
  EXPECT_EQ(dr.subsets[1].traffic_policy->load_balancer->simple, LoadBalancer::Simple::kLeastRequest);

  const auto& pa = r->peer_authentications.at(0);
  EXPECT_EQ(pa.mode, MtlsMode::kStrict);
  EXPECT_EQ(pa.port_level.at(8080), MtlsMode::kPermissive);
  EXPECT_EQ(pa.selector.at("app"), "web");

  const auto& ap = r->authorization_policies.at(0);
  EXPECT_EQ(ap.action, AuthorizationPolicy::Action::kDeny);
  ASSERT_EQ(ap.rules.size(), 1u);
  EXPECT_EQ(ap.rules[0].from[0].principals[0], "cluster.local/ns/shop/sa/front");
  EXPECT_EQ(ap.rules[0].from[0].not_namespaces[0], "evil");
  EXPECT_EQ(ap.rules[0].to[0].paths[0], "/api*");
  EXPECT_EQ(ap.rules[0].to[0].ports, std::vector<uint16_t>{8080});
  EXPECT_EQ(ap.rules[0].to[0].not_ports, std::vector<uint16_t>{9090});
}

TEST(IstioYamlTest, JsonRoundTripsTheWholeModel) {
  auto r = parseMeshYaml(kAll, "all.yaml");
  ASSERT_TRUE(r.ok()) << r.error().message;
  auto back = meshConfigFromJson(nlohmann::json::parse(toJson(*r).dump()), "config");
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, *r);
  auto direct = meshConfigFromJson(toJson(*r), "config");  // signed integers before a dump
  ASSERT_TRUE(direct.ok()) << direct.error().message;
  EXPECT_EQ(*direct, *r);
  EXPECT_FALSE(
      meshConfigFromJson(nlohmann::json::parse(R"({"virtualServices": [{"http": [{"timeoutMs": -1}]}]})"), "c").ok());
  EXPECT_FALSE(meshConfigFromJson(nlohmann::json::parse(R"({"virtualServices": [{"hosts": 5}]})"), "c").ok());
  EXPECT_FALSE(meshConfigFromJson(nlohmann::json::parse("[1]"), "c").ok());
  EXPECT_TRUE(meshConfigFromJson(nlohmann::json::object(), "c").ok());
}

TEST(IstioYamlTest, UnsupportedFieldsNameFileLineKindAndPath) {
  auto r = parseMeshYaml(R"(apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: web}
spec:
  hosts: [web]
  http:
  - route:
    - destination: {host: web}
    mirror: {host: other}
    corsPolicy: {allowOrigins: []}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ap}
spec:
  rules:
  - when:
    - key: request.headers[x]
      values: [a]
)",
                         "f.yaml");
  ASSERT_FALSE(r.ok());
  const std::string& m = r.error().message;
  EXPECT_NE(m.find("f.yaml:9: VirtualService \"web\": spec.http[0].mirror: not supported by offcore"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("f.yaml:10: VirtualService \"web\": spec.http[0].corsPolicy: not supported by offcore"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("f.yaml:17: AuthorizationPolicy \"ap\": spec.rules[0].when: not supported by offcore"),
            std::string::npos)
      << m;
}

// Parses one VirtualService spec fragment and returns the error text.
std::string vsError(const std::string& spec) {
  auto r = parseMeshYaml(
      "apiVersion: networking.istio.io/v1beta1\nkind: VirtualService\nmetadata: {name: v}\nspec:\n" + spec, "v.yaml");
  return r.ok() ? "" : r.error().message;
}

TEST(IstioYamlTest, TypesAndRangesAreChecked) {
  EXPECT_NE(vsError("  hosts: [web]\n  http:\n  - route:\n    - {destination: {host: a}, weight: 60}\n"
                    "    - {destination: {host: b}, weight: 30}\n")
                .find("add up to 100 (got 90)"),
            std::string::npos);
  EXPECT_NE(vsError("  hosts: [web]\n  http:\n  - route:\n    - {destination: {host: a}, weight: 50}\n")
                .find("single destination"),
            std::string::npos);
  EXPECT_NE(vsError("  hosts: [web]\n  http:\n  - route:\n    - {destination: {host: a}, weight: 101}\n")
                .find("must be 0-100"),
            std::string::npos);
  EXPECT_NE(vsError("  hosts: [web]\n  http:\n  - route: [{destination: {host: a}}]\n    timeout: 2 seconds\n")
                .find("v.yaml:8: VirtualService \"v\": spec.http[0].timeout: must be a duration"),
            std::string::npos);
  EXPECT_NE(vsError("  hosts: [web]\n  http:\n  - route: [{destination: {host: a}}]\n"
                    "    fault: {abort: {percentage: {value: 120}, httpStatus: 503}}\n")
                .find("must be a number 0-100"),
            std::string::npos);
  EXPECT_NE(vsError("  hosts: [web]\n  http:\n  - route: [{destination: {host: a}}]\n"
                    "    retries: {attempts: 2, retryOn: \"5xx,bogus\"}\n")
                .find("\"bogus\" is not supported by offcore"),
            std::string::npos);
  // Status codes are retry conditions too (Istio: "503,connect-failure"), within 100-599.
  EXPECT_EQ(vsError("  hosts: [web]\n  http:\n  - route: [{destination: {host: a}}]\n"
                    "    retries: {attempts: 2, retryOn: \"503, connect-failure\"}\n"),
            "");
  EXPECT_NE(vsError("  hosts: [web]\n  http:\n  - route: [{destination: {host: a}}]\n"
                    "    retries: {attempts: 2, retryOn: \"5xx,99\"}\n")
                .find("\"99\" is not supported by offcore"),
            std::string::npos);
  EXPECT_NE(vsError("  hosts: ['*.example.com']\n  http:\n  - route: [{destination: {host: a}}]\n").find("wildcard"),
            std::string::npos);
  EXPECT_NE(vsError("  hosts: [web]\n  http:\n  - match: [{uri: {prefix: /a, exact: /b}}]\n"
                    "    route: [{destination: {host: a}}]\n")
                .find("exactly one of exact, prefix or regex"),
            std::string::npos);
  EXPECT_NE(
      vsError("  hosts: [web]\n  http:\n  - match: [{uri: {regex: '(('}}]\n    route: [{destination: {host: a}}]\n")
          .find("RE2 syntax"),
      std::string::npos);
  // Nested counts would need an automaton far past Regex::kMaxProgramBytes.
  EXPECT_NE(vsError("  hosts: [web]\n  http:\n  - match: [{uri: {regex: '((a{1000}){1000})'}}]\n"
                    "    route: [{destination: {host: a}}]\n")
                .find("regular expression"),
            std::string::npos);
  // ECMAScript-only syntax (lookahead) is not RE2: refused, as istiod would.
  EXPECT_NE(vsError("  hosts: [web]\n  http:\n  - match: [{uri: {regex: '/a(?=b)'}}]\n"
                    "    route: [{destination: {host: a}}]\n")
                .find("RE2 syntax"),
            std::string::npos);
  EXPECT_EQ(vsError("  hosts: [web]\n  http:\n  - match: [{uri: {regex: '^/v[0-9]{1,3}/x{2}'}}]\n"
                    "    route: [{destination: {host: a}}]\n"),
            "");
  EXPECT_NE(vsError("  hosts: [web]\n  hosts: [db]\n  http:\n  - route: [{destination: {host: a}}]\n")
                .find("v.yaml:6: VirtualService \"v\": spec.hosts: duplicate field"),
            std::string::npos);
  EXPECT_NE(vsError("  hosts: [web]\n").find("needs http or tcp routes"), std::string::npos);
}

TEST(IstioYamlTest, AllErrorsOfAFileAtOnceAndNothingReturned) {
  auto r = parseMeshYaml(R"(apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: a}
spec:
  host: web
  trafficPolicy:
    loadBalancer: {simple: PASSTHROUGH}
    tls: {mode: ISTIO_MUTUAL}
---
apiVersion: networking.istio.io/v1beta1
kind: Gateway
metadata: {name: gw}
spec: {}
---
apiVersion: security.istio.io/v1alpha1
kind: PeerAuthentication
metadata: {name: p}
spec:
  mtls: {mode: SOMETIMES}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ap}
spec:
  action: CUSTOM
  provider: {name: ext}
)",
                         "e.yaml");
  ASSERT_FALSE(r.ok());
  const std::string& m = r.error().message;
  for (const char* want : {"e.yaml:7: DestinationRule \"a\": spec.trafficPolicy.loadBalancer.simple: must be",
                           "e.yaml:8: DestinationRule \"a\": spec.trafficPolicy.tls: not supported by offcore",
                           "e.yaml:11: Gateway \"gw\": kind: kind \"Gateway\" is not supported by offcore",
                           "e.yaml:15: PeerAuthentication \"p\": apiVersion: must be one of",
                           "e.yaml:19: PeerAuthentication \"p\": spec.mtls.mode: must be",
                           "e.yaml:25: AuthorizationPolicy \"ap\": spec.action: \"CUSTOM\" is not supported by offcore",
                           "e.yaml:26: AuthorizationPolicy \"ap\": spec.provider: not supported by offcore"})
    EXPECT_NE(m.find(want), std::string::npos) << "missing: " << want << "\nin:\n" << m;
}

TEST(IstioYamlTest, SyntaxErrorsAndGarbageNeverThrow) {
  for (const char* text :
       {"kind: VirtualService\nmetadata: {name: x\n", ",", "[1, 2", "- a\n- b\n", "a: b: c",
        "kind: VirtualService\n---\n...\n---\nfoo", "\t\tx: 1", "{{{{{{{{{{{{{{{{", "kind: [VirtualService]"}) {
    auto r = parseMeshYaml(text, "g.yaml");
    EXPECT_FALSE(r.ok()) << text;
    if (!r.ok()) {
      EXPECT_EQ(r.error().message.rfind("g.yaml:", 0), 0u) << r.error().message;
    }
  }
  EXPECT_TRUE(parseMeshYaml("# only a comment\n---\n", "c.yaml").ok());
}

TEST(IstioYamlTest, DuplicateDocumentsAndLocations) {
  std::string doc =
      "apiVersion: networking.istio.io/v1beta1\nkind: DestinationRule\nmetadata: {name: d}\nspec: {host: web}\n";
  auto r = parseMeshYaml(doc + "---\n" + doc, "d.yaml");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("d.yaml:6: DestinationRule \"d\": defined twice"), std::string::npos)
      << r.error().message;
  auto p = parseMeshDocuments(kAll, "all.yaml");
  ASSERT_TRUE(p.ok());
  ASSERT_EQ(p->documents.size(), 4u);
  EXPECT_EQ(p->documents[0].field_lines.at("spec.hosts[0]"), 7);
  EXPECT_EQ(p->documents[0].field_lines.at("spec.http[0].route[1].destination.subset"), 19);
  EXPECT_EQ(p->documents[1].line, 33);
  EXPECT_EQ(p->documents[1].where("spec.host"), "all.yaml:37: DestinationRule \"web\": spec.host: ");
}

TEST(IstioYamlTest, DurationsAndKinds) {
  EXPECT_EQ(*parseDuration("1.5s"), Millis(1500));
  EXPECT_EQ(*parseDuration("200ms"), Millis(200));
  EXPECT_EQ(*parseDuration("2m"), Millis(120000));
  EXPECT_EQ(*parseDuration("1h"), Millis(3600000));
  EXPECT_EQ(*parseDuration("0s"), Millis(0));
  for (const char* bad : {"", "s", "1", "-1s", "1.5ms", "1e3s", "1.2.3s", "5 s", "99999999999999999h"})
    EXPECT_FALSE(parseDuration(bad).ok()) << bad;
  EXPECT_EQ(formatDuration(Millis(1500)), "1.5s");
  EXPECT_EQ(formatDuration(Millis(200)), "200ms");
  EXPECT_EQ(formatDuration(Millis(2000)), "2s");
  EXPECT_EQ(*canonicalMeshKind("vs"), kVirtualService);
  EXPECT_EQ(*canonicalMeshKind("DestinationRules"), kDestinationRule);
  EXPECT_EQ(*canonicalMeshKind("authorizationpolicies"), kAuthorizationPolicy);
  EXPECT_EQ(*canonicalMeshKind("pa"), kPeerAuthentication);
  EXPECT_FALSE(canonicalMeshKind("gateway").ok());
  EXPECT_EQ(canonicalHost("web.shop.svc.cluster.local"), "web");
}

}  // namespace
}  // namespace offcore::mesh
