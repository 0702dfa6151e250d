// Per-request policy decisions: fault injection, retries and
// AuthorizationPolicy evaluation. Pure functions over the config model.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "mesh/config/snapshot.h"
#include "mesh/route/random.h"

namespace offcore::mesh::route {

struct FaultDecision {
  Millis delay{0};     // 0 = no delay
  uint16_t abort = 0;  // 0 = no abort, else the status to answer
};
FaultDecision decideFault(const HttpRoute& route, Random& random);

// What happened to one upstream attempt.
struct AttemptOutcome {
  enum class Kind { kResponse, kConnectFailure, kReset, kTimeout } kind = Kind::kResponse;
  int status = 0;        // kResponse
  int grpc_status = -1;  // kResponse to a gRPC request: grpc-status of a trailers-only response (-1: none)
};
// Whether attempt number `attempts_done` (1 = the first try) may be retried.
// Empty retry_on means Istio's default: connect-failure, refused-stream, 503.
bool shouldRetry(const RetryPolicy& policy, uint32_t attempts_done, const AttemptOutcome& outcome);

struct AuthzRequest {
  std::string source_principal;  // SPIFFE ID ("spiffe://td/ns/x/sa/y") or ""
  std::string source_namespace;
  std::string method, path;
  uint16_t port = 0;  // the destination (server) port
};
struct AuthzDecision {
  bool allowed = true;
  std::string policy;  // the deciding policy ("ns/name"), "" when none
};
// Policies that apply to a workload in `ns` with `labels` (those of its
// namespace and of the root namespace, kMeshRootNamespace): DENY first,
// then if any ALLOW applies, one of them must match.
AuthzDecision authorize(const std::vector<AuthorizationPolicy>& policies, const std::string& ns, const Labels& labels,
                        const AuthzRequest& req);
// "spiffe://td/ns/<ns>/sa/<sa>" -> "<ns>" ("" when not that shape).
std::string namespaceOf(const std::string& spiffe_id);
// Istio string match: "*", "prefix*", "*suffix" or exact.
bool matchPattern(const std::string& pattern, const std::string& value);

}  // namespace offcore::mesh::route
