// MeshConfig <-> JSON (the store's config.json, `mesh get --json`).
// Durations are whole milliseconds ("timeoutMs"); the rest uses Istio's
// field names. Reading never throws: every access checks the type first.
#include <cmath>

#include "mesh/config/istio_yaml.h"

namespace offcore::mesh {

using nlohmann::json;

namespace {

json matchJson(const StringMatch& m) {
  const char* k = m.kind == StringMatch::Kind::kExact    ? "exact"
                  : m.kind == StringMatch::Kind::kPrefix ? "prefix"
                                                         : "regex";
  return {{k, m.value}};
}

json routeJson(const std::vector<RouteDestination>& r) {
  json out = json::array();
  for (const auto& d : r)
    out.push_back({{"host", d.destination.host},
                   {"subset", d.destination.subset},
                   {"port", d.destination.port},
                   {"weight", d.weight}});
  return out;
}

json policyJson(const TrafficPolicy& p) {
  json j = json::object();
  if (p.load_balancer) {
    const char* s[] = {"ROUND_ROBIN", "LEAST_REQUEST", "RANDOM"};
    j["loadBalancer"] = {{"simple", s[static_cast<int>(p.load_balancer->simple)]},
                         {"httpHeaderName", p.load_balancer->hash_header}};
  }
  if (p.connection_pool) {
    const auto& c = *p.connection_pool;
    j["connectionPool"] = {{"maxConnections", c.max_connections},
                           {"connectTimeoutMs", c.connect_timeout.count()},
                           {"http1MaxPendingRequests", c.http1_max_pending_requests},
                           {"http2MaxRequests", c.http2_max_requests},
                           {"maxRequestsPerConnection", c.max_requests_per_connection},
                           {"maxRetries", c.max_retries}};
  }
  if (p.retry_budget)
    j["retryBudget"] = {{"percent", p.retry_budget->percent},
                        {"minRetryConcurrency", p.retry_budget->min_retry_concurrency},
                        {"budgetIntervalMs", p.retry_budget->budget_interval.count()}};
  if (p.outlier_detection) {
    const auto& o = *p.outlier_detection;
    j["outlierDetection"] = {{"consecutive5xxErrors", o.consecutive_5xx_errors},
                             {"intervalMs", o.interval.count()},
                             {"baseEjectionTimeMs", o.base_ejection_time.count()},
                             {"maxEjectionPercent", o.max_ejection_percent}};
  }
  return j;
}

const char* modeName(MtlsMode m) {
  const char* n[] = {"UNSET", "STRICT", "PERMISSIVE", "DISABLE"};
  return n[static_cast<int>(m)];
}

// A checked view of one JSON object; the first problem sticks in *err.
class In {
 public:
  In(const json& j, std::string where, std::string* err) : j_(j), where_(std::move(where)), err_(err) {
    if (!j_.is_object()) bad("", "expected an object");
  }
  const json* at(const char* k, bool (json::*is)() const, const char* what) {
    if (!j_.is_object()) return nullptr;
    auto it = j_.find(k);
    if (it == j_.end()) return nullptr;  // absent: the default
    if (!((*it).*is)()) {
      bad(k, std::string("expected ") + what);
      return nullptr;
    }
    return &*it;
  }
  std::string str(const char* k) {
    auto* v = at(k, &json::is_string, "a string");
    return v ? v->get<std::string>() : std::string();
  }
  uint64_t num(const char* k, uint64_t max, uint64_t dflt = 0) {
    auto* v = at(k, &json::is_number_integer, "an unsigned integer");
    if (!v) return dflt;
    if (v->is_number_integer() && !v->is_number_unsigned() && v->get<int64_t>() < 0) {
      bad(k, "must not be negative");
      return dflt;
    }
    if (v->get<uint64_t>() > max) bad(k, "must be <= " + std::to_string(max));
    return std::min(v->get<uint64_t>(), max);
  }
  double dbl(const char* k) {
    auto* v = at(k, &json::is_number, "a number");
    double d = v ? v->get<double>() : 0;
    if (!(d >= 0 && d <= 100)) bad(k, "must be 0-100"), d = 0;
    return d;
  }
  const json& arr(const char* k) {
    static const json empty = json::array();
    auto* v = at(k, &json::is_array, "an array");
    return v ? *v : empty;
  }
  const json& obj(const char* k) {
    static const json empty = json::object();
    auto* v = at(k, &json::is_object, "an object");
    return v ? *v : empty;
  }
  bool has(const char* k) const { return j_.is_object() && j_.contains(k); }
  std::vector<std::string> strs(const char* k) {
    std::vector<std::string> out;
    for (const auto& s : arr(k)) {
      if (!s.is_string()) return bad(k, "expected strings"), out;
      out.push_back(s.get<std::string>());
    }
    return out;
  }
  Labels labels(const char* k) {
    Labels out;
    const json& o = obj(k);
    for (auto it = o.begin(); it != o.end(); ++it) {
      if (!it->is_string()) return bad(k, "expected string values"), out;
      out[it.key()] = it->get<std::string>();
    }
    return out;
  }
  std::string path(const std::string& k) const { return where_ + "." + k; }
  void bad(const std::string& k, const std::string& msg) {
    if (err_->empty()) *err_ = (k.empty() ? where_ : path(k)) + ": " + msg;
  }

 private:
  const json& j_;
  std::string where_;
  std::string* err_;
};

std::optional<StringMatch> matchFrom(const json& j, const std::string& where, std::string* err) {
  In in(j, where, err);
  for (auto [k, kind] : {std::pair{"exact", StringMatch::Kind::kExact}, std::pair{"prefix", StringMatch::Kind::kPrefix},
                         std::pair{"regex", StringMatch::Kind::kRegex}})
    if (in.has(k)) return StringMatch{kind, in.str(k)};
  in.bad("", "expected exact, prefix or regex");
  return std::nullopt;
}

std::vector<RouteDestination> routeFrom(const json& arr, const std::string& where, std::string* err) {
  std::vector<RouteDestination> out;
  for (size_t i = 0; i < arr.size(); ++i) {
    In in(arr[i], where + "[" + std::to_string(i) + "]", err);
    RouteDestination d;
    d.destination.host = in.str("host");
    d.destination.subset = in.str("subset");
    d.destination.port = static_cast<uint16_t>(in.num("port", 65535));
    d.weight = static_cast<uint32_t>(in.num("weight", 100));
    out.push_back(d);
  }
  return out;
}

TrafficPolicy policyFrom(const json& j, const std::string& where, std::string* err) {
  In in(j, where, err);
  TrafficPolicy p;
  if (in.has("loadBalancer")) {
    In lb(in.obj("loadBalancer"), in.path("loadBalancer"), err);
    LoadBalancer l;
    std::string s = lb.str("simple");
    l.simple = s == "LEAST_REQUEST" ? LoadBalancer::Simple::kLeastRequest
               : s == "RANDOM"      ? LoadBalancer::Simple::kRandom
                                    : LoadBalancer::Simple::kRoundRobin;
    l.hash_header = lb.str("httpHeaderName");
    p.load_balancer = l;
  }
  if (in.has("connectionPool")) {
    In cp(in.obj("connectionPool"), in.path("connectionPool"), err);
    ConnectionPool c;
    c.max_connections = static_cast<uint32_t>(cp.num("maxConnections", UINT32_MAX, c.max_connections));
    c.connect_timeout = Millis(cp.num("connectTimeoutMs", INT32_MAX, c.connect_timeout.count()));
    c.http1_max_pending_requests =
        static_cast<uint32_t>(cp.num("http1MaxPendingRequests", UINT32_MAX, c.http1_max_pending_requests));
    c.http2_max_requests = static_cast<uint32_t>(cp.num("http2MaxRequests", UINT32_MAX, c.http2_max_requests));
    c.max_requests_per_connection = static_cast<uint32_t>(cp.num("maxRequestsPerConnection", UINT32_MAX, 0));
    c.max_retries = static_cast<uint32_t>(cp.num("maxRetries", UINT32_MAX, c.max_retries));
    p.connection_pool = c;
  }
  if (in.has("retryBudget")) {
    In rb(in.obj("retryBudget"), in.path("retryBudget"), err);
    RetryBudget b;
    if (rb.has("percent")) b.percent = rb.dbl("percent");
    b.min_retry_concurrency = static_cast<uint32_t>(rb.num("minRetryConcurrency", UINT32_MAX, b.min_retry_concurrency));
    b.budget_interval = Millis(rb.num("budgetIntervalMs", INT64_MAX, 0));
    p.retry_budget = b;
  }
  if (in.has("outlierDetection")) {
    In od(in.obj("outlierDetection"), in.path("outlierDetection"), err);
    OutlierDetection o;
    o.consecutive_5xx_errors = static_cast<uint32_t>(od.num("consecutive5xxErrors", UINT32_MAX));
    o.interval = Millis(od.num("intervalMs", INT64_MAX, o.interval.count()));
    o.base_ejection_time = Millis(od.num("baseEjectionTimeMs", INT64_MAX, o.base_ejection_time.count()));
    o.max_ejection_percent = static_cast<uint32_t>(od.num("maxEjectionPercent", 100, o.max_ejection_percent));
    p.outlier_detection = o;
  }
  return p;
}

MtlsMode modeFrom(const std::string& s) {
  return s == "STRICT"       ? MtlsMode::kStrict
         : s == "PERMISSIVE" ? MtlsMode::kPermissive
         : s == "DISABLE"    ? MtlsMode::kDisable
                             : MtlsMode::kUnset;
}

std::vector<uint16_t> portsFrom(In& in, const char* k) {
  std::vector<uint16_t> out;
  for (const auto& p : in.arr(k)) {
    if (!p.is_number_integer() || p.get<int64_t>() < 0 || p.get<int64_t>() > 65535)
      return in.bad(k, "expected ports"), out;
    out.push_back(static_cast<uint16_t>(p.get<uint64_t>()));
  }
  return out;
}

}  // namespace

json toJson(const VirtualService& v) {
  json http = json::array(), tcp = json::array();
  for (const auto& r : v.http) {
    json match = json::array();
    for (const auto& m : r.match) {
      json mj = json::object();
      if (m.uri) mj["uri"] = matchJson(*m.uri);
      if (m.method) mj["method"] = matchJson(*m.method);
      if (m.authority) mj["authority"] = matchJson(*m.authority);
      json headers = json::object();
      for (const auto& [h, hm] : m.headers) headers[h] = matchJson(hm);
      mj["headers"] = headers;
      mj["port"] = m.port;
      match.push_back(mj);
    }
    json rj = {{"name", r.name}, {"match", match}, {"route", routeJson(r.route)}, {"timeoutMs", r.timeout.count()}};
    if (r.retries)
      rj["retries"] = {{"attempts", r.retries->attempts},
                       {"perTryTimeoutMs", r.retries->per_try_timeout.count()},
                       {"retryOn", r.retries->retry_on}};
    if (r.fault_delay)
      rj["faultDelay"] = {{"percentage", r.fault_delay->percent}, {"fixedDelayMs", r.fault_delay->fixed_delay.count()}};
    if (r.fault_abort)
      rj["faultAbort"] = {{"percentage", r.fault_abort->percent}, {"httpStatus", r.fault_abort->http_status}};
    http.push_back(rj);
  }
  for (const auto& t : v.tcp) tcp.push_back({{"port", t.port}, {"route", routeJson(t.route)}});
  return {{"name", v.name}, {"namespace", v.ns}, {"hosts", v.hosts}, {"http", http}, {"tcp", tcp}};
}

json toJson(const DestinationRule& d) {
  json subsets = json::array();
  for (const auto& s : d.subsets) {
    json sj = {{"name", s.name}, {"labels", s.labels}};
    if (s.traffic_policy) sj["trafficPolicy"] = policyJson(*s.traffic_policy);
    subsets.push_back(sj);
  }
  return {{"name", d.name},
          {"namespace", d.ns},
          {"host", d.host},
          {"trafficPolicy", policyJson(d.traffic_policy)},
          {"subsets", subsets}};
}

json toJson(const PeerAuthentication& p) {
  json ports = json::object();
  for (const auto& [port, m] : p.port_level) ports[std::to_string(port)] = modeName(m);
  return {{"name", p.name},
          {"namespace", p.ns},
          {"selector", p.selector},
          {"mode", modeName(p.mode)},
          {"portLevelMtls", ports}};
}

json toJson(const AuthorizationPolicy& a) {
  json rules = json::array();
  for (const auto& r : a.rules) {
    json from = json::array(), to = json::array();
    for (const auto& s : r.from)
      from.push_back({{"principals", s.principals},
                      {"notPrincipals", s.not_principals},
                      {"namespaces", s.namespaces},
                      {"notNamespaces", s.not_namespaces}});
    for (const auto& o : r.to)
      to.push_back({{"methods", o.methods},
                    {"notMethods", o.not_methods},
                    {"paths", o.paths},
                    {"notPaths", o.not_paths},
                    {"ports", o.ports},
                    {"notPorts", o.not_ports}});
    rules.push_back({{"from", from}, {"to", to}});
  }
  return {{"name", a.name},
          {"namespace", a.ns},
          {"selector", a.selector},
          {"action", a.action == AuthorizationPolicy::Action::kAllow ? "ALLOW" : "DENY"},
          {"rules", rules}};
}

json toJson(const MeshConfig& c) {
  json vs = json::array(), dr = json::array(), pa = json::array(), ap = json::array();
  for (const auto& v : c.virtual_services) vs.push_back(toJson(v));
  for (const auto& d : c.destination_rules) dr.push_back(toJson(d));
  for (const auto& p : c.peer_authentications) pa.push_back(toJson(p));
  for (const auto& a : c.authorization_policies) ap.push_back(toJson(a));
  return {
      {"virtualServices", vs}, {"destinationRules", dr}, {"peerAuthentications", pa}, {"authorizationPolicies", ap}};
}

Result<MeshConfig> meshConfigFromJson(const json& j, const std::string& where) {
  std::string err;
  In in(j, where, &err);
  MeshConfig c;
  auto each = [&](const char* key, auto fn) {
    const json& a = in.arr(key);
    for (size_t i = 0; i < a.size() && err.empty(); ++i) {
      In item(a[i], in.path(key) + "[" + std::to_string(i) + "]", &err);
      fn(item, a[i]);
    }
  };
  each("virtualServices", [&](In& v, const json&) {
    VirtualService vs;
    vs.name = v.str("name"), vs.ns = v.str("namespace"), vs.hosts = v.strs("hosts");
    const json& http = v.arr("http");
    for (size_t i = 0; i < http.size(); ++i) {
      std::string w = v.path("http[" + std::to_string(i) + "]");
      In r(http[i], w, &err);
      HttpRoute route;
      route.name = r.str("name");
      const json& match = r.arr("match");
      for (size_t k = 0; k < match.size(); ++k) {
        In m(match[k], w + ".match[" + std::to_string(k) + "]", &err);
        HttpMatch hm;
        if (m.has("uri")) hm.uri = matchFrom(m.obj("uri"), m.path("uri"), &err);
        if (m.has("method")) hm.method = matchFrom(m.obj("method"), m.path("method"), &err);
        if (m.has("authority")) hm.authority = matchFrom(m.obj("authority"), m.path("authority"), &err);
        const json& h = m.obj("headers");
        for (auto it = h.begin(); it != h.end(); ++it)
          if (auto sm = matchFrom(*it, m.path("headers." + it.key()), &err)) hm.headers[it.key()] = *sm;
        hm.port = static_cast<uint16_t>(m.num("port", 65535));
        route.match.push_back(hm);
      }
      route.route = routeFrom(r.arr("route"), r.path("route"), &err);
      route.timeout = Millis(r.num("timeoutMs", INT64_MAX));
      if (r.has("retries")) {
        In rt(r.obj("retries"), r.path("retries"), &err);
        route.retries = RetryPolicy{static_cast<uint32_t>(rt.num("attempts", 100)),
                                    Millis(rt.num("perTryTimeoutMs", INT64_MAX)), rt.strs("retryOn")};
      }
      if (r.has("faultDelay")) {
        In f(r.obj("faultDelay"), r.path("faultDelay"), &err);
        route.fault_delay = FaultDelay{f.dbl("percentage"), Millis(f.num("fixedDelayMs", INT64_MAX))};
      }
      if (r.has("faultAbort")) {
        In f(r.obj("faultAbort"), r.path("faultAbort"), &err);
        route.fault_abort = FaultAbort{f.dbl("percentage"), static_cast<uint16_t>(f.num("httpStatus", 599))};
      }
      vs.http.push_back(std::move(route));
    }
    const json& tcp = v.arr("tcp");
    for (size_t i = 0; i < tcp.size(); ++i) {
      In t(tcp[i], v.path("tcp[" + std::to_string(i) + "]"), &err);
      vs.tcp.push_back(
          TcpRoute{static_cast<uint16_t>(t.num("port", 65535)), routeFrom(t.arr("route"), t.path("route"), &err)});
    }
    c.virtual_services.push_back(std::move(vs));
  });
  each("destinationRules", [&](In& d, const json&) {
    DestinationRule dr;
    dr.name = d.str("name"), dr.ns = d.str("namespace"), dr.host = d.str("host");
    dr.traffic_policy = policyFrom(d.obj("trafficPolicy"), d.path("trafficPolicy"), &err);
    const json& subsets = d.arr("subsets");
    for (size_t i = 0; i < subsets.size(); ++i) {
      In s(subsets[i], d.path("subsets[" + std::to_string(i) + "]"), &err);
      Subset sub{s.str("name"), s.labels("labels"), std::nullopt};
      if (s.has("trafficPolicy"))
        sub.traffic_policy = policyFrom(s.obj("trafficPolicy"), s.path("trafficPolicy"), &err);
      dr.subsets.push_back(std::move(sub));
    }
    c.destination_rules.push_back(std::move(dr));
  });
  each("peerAuthentications", [&](In& p, const json&) {
    PeerAuthentication pa;
    pa.name = p.str("name"), pa.ns = p.str("namespace"), pa.selector = p.labels("selector");
    pa.mode = modeFrom(p.str("mode"));
    Labels ports = p.labels("portLevelMtls");
    for (const auto& [port, mode] : ports) {
      bool digits = !port.empty() && port.size() <= 5;
      for (char ch : port) digits = digits && ch >= '0' && ch <= '9';
      if (!digits || std::stoi(port) > 65535 || std::stoi(port) == 0) {
        p.bad("portLevelMtls", "keys must be ports");
        break;
      }
      pa.port_level[static_cast<uint16_t>(std::stoi(port))] = modeFrom(mode);
    }
    c.peer_authentications.push_back(std::move(pa));
  });
  each("authorizationPolicies", [&](In& a, const json&) {
    AuthorizationPolicy ap;
    ap.name = a.str("name"), ap.ns = a.str("namespace"), ap.selector = a.labels("selector");
    ap.action = a.str("action") == "DENY" ? AuthorizationPolicy::Action::kDeny : AuthorizationPolicy::Action::kAllow;
    const json& rules = a.arr("rules");
    for (size_t i = 0; i < rules.size(); ++i) {
      In r(rules[i], a.path("rules[" + std::to_string(i) + "]"), &err);
      AuthzRule rule;
      for (const auto& f : r.arr("from")) {
        In s(f, r.path("from"), &err);
        rule.from.push_back(
            {s.strs("principals"), s.strs("notPrincipals"), s.strs("namespaces"), s.strs("notNamespaces")});
      }
      for (const auto& t : r.arr("to")) {
        In o(t, r.path("to"), &err);
        rule.to.push_back({o.strs("methods"), o.strs("notMethods"), o.strs("paths"), o.strs("notPaths"),
                           portsFrom(o, "ports"), portsFrom(o, "notPorts")});
      }
      ap.rules.push_back(std::move(rule));
    }
    c.authorization_policies.push_back(std::move(ap));
  });
  if (!err.empty()) return makeError(err + " (the mesh config file is damaged; re-apply your YAML)");
  return c;
}

}  // namespace offcore::mesh
