// RouteConfiguration -> VirtualServices (see translate.h).
#include <algorithm>
#include <set>

#include "base/regex.h"
#include "mesh/xds/translate.h"

namespace offcore::mesh::xds {

namespace route = envoy::config::route::v3;
namespace matcher = envoy::type::matcher::v3;

namespace {

Millis toMillis(const google::protobuf::Duration& d) { return Millis(d.seconds() * 1000 + d.nanos() / 1000000); }

// Fields outside the subset land in the unknown-field set; on a match they
// would narrow what the route matches, so ignoring them would misroute.
Status refuseUnknown(const google::protobuf::Message& m, const std::string& where) {
  if (!m.GetReflection()->GetUnknownFields(m).empty())
    return makeError(where + ": " + m.GetDescriptor()->name() +
                     " uses a field offcore does not support (see src/mesh/xds/README.md)");
  return okStatus();
}

// A safe_regex that RE2 refuses is refused with the route (NACK), not
// left to never match.
Result<StringMatch> regexMatch(const std::string& pattern, const std::string& where) {
  if (auto re = Regex::compile(pattern); !re.ok()) return makeError(where + ": " + re.error().message);
  return StringMatch{StringMatch::Kind::kRegex, pattern};
}

Result<StringMatch> stringMatch(const matcher::StringMatcher& m, const std::string& where) {
  if (m.ignore_case()) return makeError(where + ": ignore_case is not supported");
  switch (m.match_pattern_case()) {
    case matcher::StringMatcher::kExact: return StringMatch{StringMatch::Kind::kExact, m.exact()};
    case matcher::StringMatcher::kPrefix: return StringMatch{StringMatch::Kind::kPrefix, m.prefix()};
    case matcher::StringMatcher::kSafeRegex: return regexMatch(m.safe_regex().regex(), where);
    default: return makeError(where + ": only exact, prefix and safe_regex string matches are supported");
  }
}

Result<StringMatch> headerMatch(const route::HeaderMatcher& h, const std::string& where) {
  OC_TRY(refuseUnknown(h, where));
  if (h.invert_match()) return makeError(where + ": invert_match is not supported");
  switch (h.header_match_specifier_case()) {
    case route::HeaderMatcher::kExactMatch: return StringMatch{StringMatch::Kind::kExact, h.exact_match()};
    case route::HeaderMatcher::kPrefixMatch: return StringMatch{StringMatch::Kind::kPrefix, h.prefix_match()};
    case route::HeaderMatcher::kSafeRegexMatch: return regexMatch(h.safe_regex_match().regex(), where);
    case route::HeaderMatcher::kStringMatch: return stringMatch(h.string_match(), where);
    default: return makeError(where + ": only exact, prefix, safe_regex and string_match header matches are supported");
  }
}

Result<HttpMatch> translateMatch(const route::RouteMatch& m, const std::string& where) {
  OC_TRY(refuseUnknown(m, where));
  if (m.has_case_sensitive() && !m.case_sensitive().value())
    return makeError(where + ": case-insensitive path matching is not supported");
  HttpMatch out;
  switch (m.path_specifier_case()) {
    case route::RouteMatch::kPrefix:
      if (!m.prefix().empty() && m.prefix() != "/") out.uri = StringMatch{StringMatch::Kind::kPrefix, m.prefix()};
      break;
    case route::RouteMatch::kPath: out.uri = StringMatch{StringMatch::Kind::kExact, m.path()}; break;
    case route::RouteMatch::kSafeRegex: {
      OC_ASSIGN_OR_RETURN(auto sm, regexMatch(m.safe_regex().regex(), where));
      out.uri = std::move(sm);
      break;
    }
    default: return makeError(where + ": the match needs prefix, path or safe_regex");
  }
  for (const auto& h : m.headers()) {
    std::string name;
    for (char c : h.name()) name += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (name.empty()) return makeError(where + ": a header match without a name");
    OC_ASSIGN_OR_RETURN(auto sm, headerMatch(h, where + " header " + name));
    if (name == ":authority" || name == "host")
      out.authority = sm;
    else if (name == ":method")
      out.method = sm;
    else if (name == ":path")
      return makeError(where + ": match the path with prefix/path/safe_regex, not a :path header");
    else
      out.headers[name] = sm;
  }
  return out;
}

Result<RetryPolicy> translateRetry(const route::RetryPolicy& r, const std::string& where) {
  RetryPolicy out;
  out.attempts = r.has_num_retries() ? r.num_retries().value() : 1;  // Envoy's default
  if (r.has_per_try_timeout()) out.per_try_timeout = toMillis(r.per_try_timeout());
  static const std::set<std::string> known = {
      "5xx",       "gateway-error",     "connect-failure",    "reset",      "retriable-4xx", "refused-stream",
      "cancelled", "deadline-exceeded", "resource-exhausted", "unavailable"};
  std::string cur;
  auto flush = [&]() -> Status {
    if (cur.empty()) return okStatus();
    if (!known.count(cur)) return makeError(where + ": retry_on '" + cur + "' is not supported");
    out.retry_on.push_back(cur);
    cur.clear();
    return okStatus();
  };
  for (char c : r.retry_on()) {
    if (c == ',') {
      OC_TRY(flush());
    } else if (c != ' ') {
      cur += c;
    }
  }
  OC_TRY(flush());
  return out;
}

Result<HttpRoute> translateRoute(const route::Route& r, const std::string& where) {
  if (r.action_case() != route::Route::kRoute)
    return makeError(where +
                     ": only forwarding routes (route action) are supported, not redirects or direct responses");
  HttpRoute out;
  out.name = r.name();
  OC_ASSIGN_OR_RETURN(auto m, translateMatch(r.match(), where));
  if (m != HttpMatch{}) out.match.push_back(std::move(m));
  const auto& a = r.route();
  switch (a.cluster_specifier_case()) {
    case route::RouteAction::kCluster: {
      OC_ASSIGN_OR_RETURN(auto d, parseClusterName(a.cluster()));
      out.route.push_back(RouteDestination{d, 0});
      break;
    }
    case route::RouteAction::kWeightedClusters:
      for (const auto& cw : a.weighted_clusters().clusters()) {
        OC_TRY(refuseUnknown(cw, where));
        OC_ASSIGN_OR_RETURN(auto d, parseClusterName(cw.name()));
        out.route.push_back(RouteDestination{d, cw.has_weight() ? cw.weight().value() : 0});
      }
      if (out.route.empty()) return makeError(where + ": weighted_clusters without clusters");
      break;
    default: return makeError(where + ": the route needs cluster or weighted_clusters");
  }
  if (a.has_timeout()) out.timeout = toMillis(a.timeout());
  if (a.has_idle_timeout()) {
    if (a.idle_timeout().seconds() < 0 || a.idle_timeout().nanos() < 0)
      return makeError(where + ": idle_timeout is negative; use 0 to switch it off");
    // A positive value below 1 ms must not become 0, which switches it off.
    out.idle_timeout = std::max(toMillis(a.idle_timeout()), Millis(a.idle_timeout().nanos() > 0 ? 1 : 0));
  }
  if (a.has_retry_policy()) {
    OC_ASSIGN_OR_RETURN(auto rp, translateRetry(a.retry_policy(), where));
    out.retries = rp;
  }
  return out;
}

bool isIpLiteral(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!(std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == ':' || c == '[' || c == ']')) return false;
  return true;
}

}  // namespace

Result<std::vector<VirtualService>> translateRoutes(const route::RouteConfiguration& rc) {
  std::vector<VirtualService> out;
  for (const auto& vh : rc.virtual_hosts()) {
    std::string where = "route configuration " + rc.name() + " virtual host " + vh.name();
    VirtualService vs;
    vs.name = rc.name() + "/" + vh.name();
    for (std::string d : vh.domains()) {
      if (d == "*" || isIpLiteral(d)) continue;
      auto colon = d.rfind(':');
      if (colon != std::string::npos) d = d.substr(0, colon);  // "web:80"
      if (d.empty() || d[0] == '*') return makeError(where + ": wildcard domain '" + d + "' is not supported");
      auto host = canonicalHost(d);
      if (std::find(vs.hosts.begin(), vs.hosts.end(), host) == vs.hosts.end()) vs.hosts.push_back(host);
    }
    for (int i = 0; i < vh.routes_size(); i++) {
      OC_ASSIGN_OR_RETURN(auto r, translateRoute(vh.routes(i), where + " route " + std::to_string(i)));
      vs.http.push_back(std::move(r));
    }
    out.push_back(std::move(vs));
  }
  return out;
}

}  // namespace offcore::mesh::xds
