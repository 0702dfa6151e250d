#include "mesh/route/policy.h"

#include <algorithm>

namespace offcore::mesh::route {

FaultDecision decideFault(const HttpRoute& route, Random& random) {
  FaultDecision d;
  if (route.fault_delay && route.fault_delay->percent > 0 && random.uniform() * 100 < route.fault_delay->percent)
    d.delay = route.fault_delay->fixed_delay;
  if (route.fault_abort && route.fault_abort->percent > 0 && random.uniform() * 100 < route.fault_abort->percent)
    d.abort = route.fault_abort->http_status;
  return d;
}

bool shouldRetry(const RetryPolicy& policy, uint32_t attempts_done, const AttemptOutcome& o) {
  if (attempts_done > policy.attempts) return false;  // attempts = retries after the first try
  std::vector<std::string> on = policy.retry_on;
  if (on.empty()) on = {"connect-failure", "refused-stream", "503"};
  using K = AttemptOutcome::Kind;
  for (const std::string& c : on) {
    if (c == "5xx" && (o.kind != K::kResponse || o.status >= 500)) return true;
    if (c == "gateway-error" &&
        (o.kind == K::kTimeout || (o.kind == K::kResponse && (o.status == 502 || o.status == 503 || o.status == 504))))
      return true;
    if (c == "connect-failure" && o.kind == K::kConnectFailure) return true;
    if ((c == "reset" || c == "refused-stream") && o.kind == K::kReset) return true;
    if (c == "retriable-4xx" && o.kind == K::kResponse && o.status == 409) return true;
    if (o.kind == K::kResponse && o.grpc_status >= 0 &&
        ((c == "cancelled" && o.grpc_status == 1) || (c == "deadline-exceeded" && o.grpc_status == 4) ||
         (c == "resource-exhausted" && o.grpc_status == 8) || (c == "unavailable" && o.grpc_status == 14)))
      return true;
    if (!c.empty() && std::all_of(c.begin(), c.end(), ::isdigit) && o.kind == K::kResponse && o.status == std::stoi(c))
      return true;
  }
  return false;
}

std::string namespaceOf(const std::string& id) {
  auto p = id.find("/ns/");
  if (p == std::string::npos) return {};
  auto e = id.find('/', p + 4);
  return id.substr(p + 4, e == std::string::npos ? std::string::npos : e - p - 4);
}

bool matchPattern(const std::string& pat, const std::string& v) {
  if (pat == "*") return true;
  if (!pat.empty() && pat.back() == '*') return v.compare(0, pat.size() - 1, pat, 0, pat.size() - 1) == 0;
  if (!pat.empty() && pat.front() == '*')
    return v.size() >= pat.size() - 1 && v.compare(v.size() - (pat.size() - 1), pat.size() - 1, pat, 1) == 0;
  return pat == v;
}

namespace {

bool anyMatch(const std::vector<std::string>& pats, const std::string& v) {
  return std::any_of(pats.begin(), pats.end(), [&](const std::string& p) { return matchPattern(p, v); });
}

bool sourceMatches(const AuthzSource& s, const AuthzRequest& r) {
  // Istio principals omit the "spiffe://" scheme.
  std::string principal = r.source_principal;
  if (principal.rfind("spiffe://", 0) == 0) principal = principal.substr(9);
  if (!s.principals.empty() && (principal.empty() || !anyMatch(s.principals, principal))) return false;
  if (!s.not_principals.empty() && anyMatch(s.not_principals, principal)) return false;
  if (!s.namespaces.empty() && (r.source_namespace.empty() || !anyMatch(s.namespaces, r.source_namespace)))
    return false;
  if (!s.not_namespaces.empty() && anyMatch(s.not_namespaces, r.source_namespace)) return false;
  return true;
}

bool operationMatches(const AuthzOperation& o, const AuthzRequest& r) {
  if (!o.methods.empty() && !anyMatch(o.methods, r.method)) return false;
  if (!o.not_methods.empty() && anyMatch(o.not_methods, r.method)) return false;
  if (!o.paths.empty() && !anyMatch(o.paths, r.path)) return false;
  if (!o.not_paths.empty() && anyMatch(o.not_paths, r.path)) return false;
  auto has = [](const std::vector<uint16_t>& v, uint16_t p) { return std::find(v.begin(), v.end(), p) != v.end(); };
  if (!o.ports.empty() && !has(o.ports, r.port)) return false;
  if (!o.not_ports.empty() && has(o.not_ports, r.port)) return false;
  return true;
}

bool ruleMatches(const AuthzRule& rule, const AuthzRequest& r) {
  bool from = rule.from.empty() ||
              std::any_of(rule.from.begin(), rule.from.end(), [&](const auto& s) { return sourceMatches(s, r); });
  bool to = rule.to.empty() ||
            std::any_of(rule.to.begin(), rule.to.end(), [&](const auto& o) { return operationMatches(o, r); });
  return from && to;
}

// A policy in the workload's namespace, or in the root namespace (mesh-wide;
// its selector then picks workloads in every namespace), as Istio applies them.
bool applies(const AuthorizationPolicy& p, const std::string& ns, const Labels& labels) {
  if (p.ns != ns && p.ns != kMeshRootNamespace) return false;
  for (const auto& [k, v] : p.selector) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  return true;
}

}  // namespace

AuthzDecision authorize(const std::vector<AuthorizationPolicy>& policies, const std::string& ns, const Labels& labels,
                        const AuthzRequest& req) {
  bool any_allow = false;
  for (const auto& p : policies) {
    if (p.action != AuthorizationPolicy::Action::kDeny || !applies(p, ns, labels)) continue;
    for (const auto& rule : p.rules)
      if (ruleMatches(rule, req)) return {false, p.ns + "/" + p.name};
  }
  for (const auto& p : policies) {
    if (p.action != AuthorizationPolicy::Action::kAllow || !applies(p, ns, labels)) continue;
    any_allow = true;
    for (const auto& rule : p.rules)
      if (ruleMatches(rule, req)) return {true, p.ns + "/" + p.name};
  }
  if (any_allow) return {false, "no ALLOW policy matched"};
  return {true, ""};
}

}  // namespace offcore::mesh::route
