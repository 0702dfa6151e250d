// The mesh's configuration model: the subset of Istio's networking and
// security resources offcore supports, as plain values. Field names follow
// Istio's (VirtualService, DestinationRule, PeerAuthentication,
// AuthorizationPolicy); the YAML parser (istio_yaml.h) fills these in and
// refuses every field it does not list here. The proxy's router consumes
// them; the xDS client produces the same structures.
//
// Names: offcore Services are cluster-scoped, so a host is a Service name
// ("web"), optionally written in Kubernetes form ("web.<ns>.svc.cluster.local"
// or "web.<ns>"); canonicalHost() reduces it to the Service name.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace offcore::mesh {

// Istio's root namespace: PeerAuthentication and AuthorizationPolicy placed
// there apply mesh-wide (Istio's default `rootNamespace`).
inline constexpr const char* kMeshRootNamespace = "istio-system";

using Labels = std::map<std::string, std::string>;
using Millis = std::chrono::milliseconds;

// Istio StringMatch: exactly one of exact / prefix / regex (RE2 syntax, as
// Istio and Envoy's safe_regex; base/regex.h).
struct StringMatch {
  enum class Kind { kExact, kPrefix, kRegex };
  Kind kind = Kind::kExact;
  std::string value;
  bool operator==(const StringMatch&) const = default;
};

// HTTPMatchRequest: every given condition must hold.
struct HttpMatch {
  std::optional<StringMatch> uri;  // the path, without the query
  std::optional<StringMatch> method;
  std::optional<StringMatch> authority;        // Host / :authority
  std::map<std::string, StringMatch> headers;  // lower-case header name -> match
  uint16_t port = 0;                           // 0 = any
  bool operator==(const HttpMatch&) const = default;
};

// Destination: a Service (canonical name), optional subset and port.
struct Destination {
  std::string host;
  std::string subset;  // "" = all endpoints
  uint16_t port = 0;   // 0 = the port the request came to
  bool operator==(const Destination&) const = default;
};

struct RouteDestination {
  Destination destination;
  uint32_t weight = 0;  // 0 with a single destination means 100
  bool operator==(const RouteDestination&) const = default;
};

// HTTPRetry. retry_on uses Envoy's names: 5xx, gateway-error,
// connect-failure, reset, retriable-4xx, refused-stream; for gRPC
// requests cancelled, deadline-exceeded, resource-exhausted, unavailable
// (the grpc-status of a trailers-only response).
struct RetryPolicy {
  uint32_t attempts = 0;
  Millis per_try_timeout{0};  // 0 = none (the route timeout still applies)
  std::vector<std::string> retry_on;
  bool operator==(const RetryPolicy&) const = default;
};

// HTTPFaultInjection.
struct FaultDelay {
  double percent = 0;  // 0..100
  Millis fixed_delay{0};
  bool operator==(const FaultDelay&) const = default;
};
struct FaultAbort {
  double percent = 0;  // 0..100
  uint16_t http_status = 0;
  bool operator==(const FaultAbort&) const = default;
};

struct HttpRoute {
  std::string name;
  std::vector<HttpMatch> match;  // empty = match everything; else any one
  std::vector<RouteDestination> route;
  Millis timeout{0};  // 0 = none
  // Envoy's RouteAction.idle_timeout (xDS only; Istio has no field for it):
  // overrides the stream idle timeout for requests on this route; 0 = none.
  std::optional<Millis> idle_timeout;
  std::optional<RetryPolicy> retries;
  std::optional<FaultDelay> fault_delay;
  std::optional<FaultAbort> fault_abort;
  bool operator==(const HttpRoute&) const = default;
};

// TCPRoute: L4, by destination port only.
struct TcpRoute {
  uint16_t port = 0;  // 0 = any
  std::vector<RouteDestination> route;
  bool operator==(const TcpRoute&) const = default;
};

struct VirtualService {
  std::string name, ns = "default";
  std::vector<std::string> hosts;  // canonical Service names
  std::vector<HttpRoute> http;     // first match wins
  std::vector<TcpRoute> tcp;
  bool operator==(const VirtualService&) const = default;
};

// TrafficPolicy pieces (DestinationRule).
struct LoadBalancer {
  enum class Simple { kRoundRobin, kLeastRequest, kRandom };
  Simple simple = Simple::kRoundRobin;
  std::string hash_header;  // consistentHash.httpHeaderName; set = ring hash on it
  bool operator==(const LoadBalancer&) const = default;
};
// Envoy's retry budget (CDS circuit_breakers.thresholds[].retry_budget;
// Istio DestinationRule trafficPolicy.retryBudget): outstanding retries are
// limited to max(min_retry_concurrency, percent% of the requests in flight),
// or, with a budget_interval, percent% of the requests that arrived within
// the last budget_interval (a sliding window of ten slots).
struct RetryBudget {
  double percent = 20;                 // 0..100
  uint32_t min_retry_concurrency = 3;  // the limit never goes below this
  Millis budget_interval{0};           // 0 = requests in flight count
  bool operator==(const RetryBudget&) const = default;
};
struct ConnectionPool {
  uint32_t max_connections = 1024;             // tcp.maxConnections
  Millis connect_timeout{10000};               // tcp.connectTimeout
  uint32_t http1_max_pending_requests = 1024;  // http.http1MaxPendingRequests
  uint32_t http2_max_requests = 1024;          // http.http2MaxRequests (max active requests)
  uint32_t max_requests_per_connection = 0;    // http.maxRequestsPerConnection, 0 = unlimited
  uint32_t max_retries = UINT32_MAX;           // http.maxRetries: outstanding retries (Istio: 2^32-1)
  bool operator==(const ConnectionPool&) const = default;
};
struct OutlierDetection {
  uint32_t consecutive_5xx_errors = 0;  // 0 = off
  Millis interval{10000};
  Millis base_ejection_time{30000};
  uint32_t max_ejection_percent = 10;
  bool operator==(const OutlierDetection&) const = default;
};
struct TrafficPolicy {
  std::optional<LoadBalancer> load_balancer;
  std::optional<ConnectionPool> connection_pool;
  std::optional<OutlierDetection> outlier_detection;
  std::optional<RetryBudget> retry_budget;  // set: replaces connection_pool.max_retries (as in Envoy)
  bool operator==(const TrafficPolicy&) const = default;
};
struct Subset {
  std::string name;
  Labels labels;                                // matched against the Backend's labels
  std::optional<TrafficPolicy> traffic_policy;  // overrides the rule's, field by field
  bool operator==(const Subset&) const = default;
};
struct DestinationRule {
  std::string name, ns = "default";
  std::string host;  // canonical Service name
  TrafficPolicy traffic_policy;
  std::vector<Subset> subsets;
  bool operator==(const DestinationRule&) const = default;
};

// PeerAuthentication: mTLS mode for the selected workloads.
enum class MtlsMode { kUnset, kStrict, kPermissive, kDisable };
struct PeerAuthentication {
  std::string name, ns = "default";
  Labels selector;  // matchLabels on the pod's Backend labels; empty = the whole namespace
  MtlsMode mode = MtlsMode::kUnset;
  std::map<uint16_t, MtlsMode> port_level;  // portLevelMtls
  bool operator==(const PeerAuthentication&) const = default;
};

// AuthorizationPolicy: ALLOW / DENY rules.
struct AuthzSource {
  std::vector<std::string> principals;  // "<td>/ns/<ns>/sa/<sa>", "*" and prefix/suffix "*" allowed
  std::vector<std::string> not_principals;
  std::vector<std::string> namespaces;
  std::vector<std::string> not_namespaces;
  bool operator==(const AuthzSource&) const = default;
};
struct AuthzOperation {
  std::vector<std::string> methods, not_methods;
  std::vector<std::string> paths, not_paths;  // exact, "prefix*" or "*suffix"
  std::vector<uint16_t> ports, not_ports;
  bool operator==(const AuthzOperation&) const = default;
};
struct AuthzRule {
  std::vector<AuthzSource> from;   // any one; empty = any source
  std::vector<AuthzOperation> to;  // any one; empty = any operation
  bool operator==(const AuthzRule&) const = default;
};
struct AuthorizationPolicy {
  enum class Action { kAllow, kDeny };
  std::string name, ns = "default";
  Labels selector;  // matchLabels on the server pod's Backend labels; empty = namespace-wide
  Action action = Action::kAllow;
  std::vector<AuthzRule> rules;  // ALLOW with no rules allows nothing
  bool operator==(const AuthorizationPolicy&) const = default;
};

// Everything `offcore mesh apply` (or the xDS client) has given the proxy.
struct MeshConfig {
  std::vector<VirtualService> virtual_services;
  std::vector<DestinationRule> destination_rules;
  std::vector<PeerAuthentication> peer_authentications;
  std::vector<AuthorizationPolicy> authorization_policies;
  bool operator==(const MeshConfig&) const = default;
};

// "web", "web.ns", "web.ns.svc", "web.ns.svc.cluster.local" -> "web".
std::string canonicalHost(const std::string& host);

}  // namespace offcore::mesh
