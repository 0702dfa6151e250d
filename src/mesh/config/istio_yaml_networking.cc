// VirtualService and DestinationRule specs (networking.istio.io): the
// fields offcore implements, with Istio's names and meanings.
#include <algorithm>
#include <cctype>
#include <set>

#include "base/regex.h"
#include "mesh/config/istio_yaml_detail.h"

namespace offcore::mesh::detail {

namespace {

// A Service host: "web" or "web.<ns>.svc.cluster.local"; no wildcards.
std::string hostProblem(const std::string& v) {
  if (v.find('*') != std::string::npos) return "wildcard hosts are not supported by offcore; name a Service";
  if (!labelProblem(canonicalHost(v)).empty())
    return "\"" + v + "\" is not a Service name (like web or web.default.svc)";
  return "";
}

bool host(Fields& f, const std::string& key, std::string& out, Ctx& c) {
  std::string h;
  bool ok = f.checked(key, h, true, hostProblem);
  if (ok) {
    out = canonicalHost(h);
    c.md.field_lines[f.field(key)] = f.lineOf(key);
  }
  return ok;
}

// A header name: an HTTP token, stored lower-case.
bool headerName(const std::string& h) {
  if (h.empty() || h.size() > 256) return false;
  for (char ch : h) {
    if (!std::isalnum(static_cast<unsigned char>(ch)) && std::string("!#$%&'*+-.^_`|~").find(ch) == std::string::npos)
      return false;
  }
  return true;
}

std::string lower(std::string s) {
  for (auto& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

// StringMatch: exactly one of exact, prefix, regex.
void stringMatch(const YAML::Node& n, const std::string& path, int line, StringMatch& out, Doc& doc) {
  Fields m(doc, n, path, line);
  if (!m.valid()) return;
  int set = 0;
  std::string v;
  if (m.str("exact", v, false)) out = {StringMatch::Kind::kExact, v}, ++set;
  if (m.str("prefix", v, false)) out = {StringMatch::Kind::kPrefix, v}, ++set;
  if (m.checked("regex", v, false, [](const std::string& r) -> std::string {
        if (r.size() > 256) return "a regex of at most 256 characters, please";
        auto re = Regex::compile(r);  // RE2, as Istio and Envoy's safe_regex
        return re.ok() ? "" : re.error().message;
      }))
    out = {StringMatch::Kind::kRegex, v}, ++set;
  if (set != 1) doc.error(line, path, "needs exactly one of exact, prefix or regex");
  m.finish();
}

void httpMatch(const YAML::Node& n, const std::string& path, int line, HttpMatch& out, Ctx& c) {
  Fields m(c.doc, n, path, line);
  if (!m.valid()) return;
  for (const char* key : {"uri", "method", "authority"}) {
    const YAML::Node* v = m.get(key, false);
    if (!v) continue;
    StringMatch sm;
    stringMatch(*v, m.field(key), m.keyLine(key), sm, c.doc);
    (key[0] == 'u' ? out.uri : key[0] == 'm' ? out.method : out.authority) = sm;
  }
  section(m, "headers", false, c.doc, [&](Fields& h) {
    for (const auto& [name, kl] : h.keys()) {
      const YAML::Node* v = h.get(name, true);
      if (!headerName(name)) {
        c.doc.error(kl, h.field(name), "not a valid HTTP header name");
        continue;
      }
      stringMatch(*v, h.field(name), kl, out.headers[lower(name)], c.doc);
    }
  });
  int64_t port = 0;
  if (m.integer("port", port, 1, 65535, false)) out.port = static_cast<uint16_t>(port);
  m.finish();
}

// route: [{destination: {host, subset, port: {number}}, weight}]
void routeDestinations(Fields& f, std::vector<RouteDestination>& out, Ctx& c) {
  eachItem(f, "route", true, true, c.doc, [&](const YAML::Node& n, const std::string& path, int line) {
    Fields r(c.doc, n, path, line);
    if (!r.valid()) return;
    RouteDestination rd;
    section(r, "destination", true, c.doc, [&](Fields& d) {
      host(d, "host", rd.destination.host, c);
      if (d.checked("subset", rd.destination.subset, false, labelProblem))
        c.md.field_lines[d.field("subset")] = d.lineOf("subset");
      section(d, "port", false, c.doc, [&](Fields& p) {
        int64_t v = 0;
        if (p.integer("number", v, 1, 65535, true)) rd.destination.port = static_cast<uint16_t>(v);
      });
    });
    int64_t w = 0;
    if (r.integer("weight", w, 0, 100, false)) rd.weight = static_cast<uint32_t>(w);
    r.finish();
    out.push_back(rd);
  });
  uint32_t sum = 0;
  for (const auto& rd : out) sum += rd.weight;
  if (out.size() > 1 && sum != 100)
    c.doc.error(f.lineOf("route"), f.field("route"),
                "the weights of several destinations must add up to 100 (got " + std::to_string(sum) + ")");
  if (out.size() == 1 && sum != 0 && sum != 100)
    c.doc.error(
        f.lineOf("route"), f.field("route"),
        "a single destination takes all traffic: leave weight out or set it to 100 (got " + std::to_string(sum) + ")");
}

const std::vector<std::string>& retryConditions() {
  static const std::vector<std::string> k = {
      "5xx",       "gateway-error",     "connect-failure",    "reset",      "retriable-4xx", "refused-stream",
      "cancelled", "deadline-exceeded", "resource-exhausted", "unavailable"};
  return k;
}

void retries(Fields& r, HttpRoute& route, Ctx& c) {
  section(r, "retries", false, c.doc, [&](Fields& f) {
    RetryPolicy p;
    int64_t v = 0;
    if (f.integer("attempts", v, 0, 100, true)) p.attempts = static_cast<uint32_t>(v);
    duration(f, "perTryTimeout", p.per_try_timeout, Millis(1), false);
    std::string on;
    if (f.str("retryOn", on, false)) {
      size_t pos = 0;
      while (pos <= on.size()) {
        size_t comma = on.find(',', pos);
        std::string cond = on.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
        while (!cond.empty() && cond.front() == ' ') cond.erase(0, 1);
        while (!cond.empty() && cond.back() == ' ') cond.pop_back();
        bool known = false;
        for (const auto& k : retryConditions()) known = known || k == cond;
        // Istio also takes HTTP status codes ("503"): Envoy's retriable-status-codes.
        known = known || (cond.size() == 3 && std::all_of(cond.begin(), cond.end(), ::isdigit) && cond >= "100" &&
                          cond <= "599");
        if (!known)
          c.doc.error(f.lineOf("retryOn"), f.field("retryOn"),
                      "\"" + cond +
                          "\" is not supported by offcore (use 5xx, gateway-error, connect-failure, reset, "
                          "retriable-4xx, refused-stream, a status code such as 503, or for gRPC cancelled, "
                          "deadline-exceeded, resource-exhausted, unavailable; comma-separated)");
        else
          p.retry_on.push_back(cond);
        if (comma == std::string::npos) break;
        pos = comma + 1;
      }
    }
    route.retries = p;
  });
}

void fault(Fields& r, HttpRoute& route, Ctx& c) {
  section(r, "fault", false, c.doc, [&](Fields& f) {
    section(f, "delay", false, c.doc, [&](Fields& d) {
      FaultDelay fd;
      percentage(d, "percentage", fd.percent, c.doc, true);
      duration(d, "fixedDelay", fd.fixed_delay, Millis(1), true);
      route.fault_delay = fd;
    });
    section(f, "abort", false, c.doc, [&](Fields& a) {
      FaultAbort fa;
      percentage(a, "percentage", fa.percent, c.doc, true);
      int64_t v = 0;
      if (a.integer("httpStatus", v, 200, 599, true)) fa.http_status = static_cast<uint16_t>(v);
      route.fault_abort = fa;
    });
  });
}

void httpRoute(const YAML::Node& n, const std::string& path, int line, VirtualService& vs, Ctx& c) {
  Fields r(c.doc, n, path, line);
  if (!r.valid()) return;
  HttpRoute route;
  r.str("name", route.name, false);
  eachItem(r, "match", false, true, c.doc, [&](const YAML::Node& m, const std::string& p, int l) {
    route.match.emplace_back();
    httpMatch(m, p, l, route.match.back(), c);
  });
  routeDestinations(r, route.route, c);
  duration(r, "timeout", route.timeout, Millis(0), false);
  retries(r, route, c);
  fault(r, route, c);
  r.finish();
  vs.http.push_back(std::move(route));
}

// tcp: [{match: [{port}], route: [...]}]; each match entry is one TcpRoute.
void tcpRoute(const YAML::Node& n, const std::string& path, int line, VirtualService& vs, Ctx& c) {
  Fields r(c.doc, n, path, line);
  if (!r.valid()) return;
  std::vector<uint16_t> ports;
  eachItem(r, "match", false, true, c.doc, [&](const YAML::Node& m, const std::string& p, int l) {
    Fields mf(c.doc, m, p, l);
    int64_t v = 0;
    if (mf.integer("port", v, 1, 65535, true)) ports.push_back(static_cast<uint16_t>(v));
    mf.finish();
  });
  if (ports.empty()) ports.push_back(0);
  std::vector<RouteDestination> dests;
  routeDestinations(r, dests, c);
  r.finish();
  for (uint16_t p : ports) vs.tcp.push_back(TcpRoute{p, dests});
}

void trafficPolicy(Fields& f, TrafficPolicy& tp, Ctx& c) {
  section(f, "loadBalancer", false, c.doc, [&](Fields& lb) {
    LoadBalancer out;
    std::string simple;
    bool has_simple = lb.oneOf("simple", simple, {"ROUND_ROBIN", "LEAST_REQUEST", "RANDOM"}, false);
    if (simple == "LEAST_REQUEST") out.simple = LoadBalancer::Simple::kLeastRequest;
    if (simple == "RANDOM") out.simple = LoadBalancer::Simple::kRandom;
    bool has_hash = section(lb, "consistentHash", false, c.doc, [&](Fields& h) {
      h.checked("httpHeaderName", out.hash_header, true, [](const std::string& v) {
        return headerName(v) ? std::string() : "\"" + v + "\" is not a valid HTTP header name";
      });
      out.hash_header = lower(out.hash_header);
    });
    has_simple = has_simple || lb.has("simple");  // an invalid value is reported already
    if (has_simple && has_hash)
      c.doc.error(lb.line(), lb.path(), "set either simple or consistentHash, not both");
    else if (!has_simple && !has_hash && lb.valid())
      c.doc.error(lb.line(), lb.path(), "needs simple or consistentHash");
    tp.load_balancer = out;
  });
  section(f, "connectionPool", false, c.doc, [&](Fields& cp) {
    ConnectionPool out;
    int64_t v = 0;
    section(cp, "tcp", false, c.doc, [&](Fields& t) {
      if (t.integer("maxConnections", v, 1, 1000000000, false)) out.max_connections = static_cast<uint32_t>(v);
      duration(t, "connectTimeout", out.connect_timeout, Millis(1), false);
    });
    section(cp, "http", false, c.doc, [&](Fields& h) {
      if (h.integer("http1MaxPendingRequests", v, 1, 1000000000, false))
        out.http1_max_pending_requests = static_cast<uint32_t>(v);
      if (h.integer("http2MaxRequests", v, 1, 1000000000, false)) out.http2_max_requests = static_cast<uint32_t>(v);
      if (h.integer("maxRequestsPerConnection", v, 0, 1000000000, false))
        out.max_requests_per_connection = static_cast<uint32_t>(v);
      // Istio's int32; 0 means its default (2^32-1, no limit), as in Istio.
      if (h.integer("maxRetries", v, 0, INT32_MAX, false) && v > 0) out.max_retries = static_cast<uint32_t>(v);
    });
    tp.connection_pool = out;
  });
  // Istio 1.27+ TrafficPolicy.retryBudget (Envoy's cluster retry_budget);
  // budgetInterval as added to both in 2026 (0s = requests in flight).
  section(f, "retryBudget", false, c.doc, [&](Fields& rb) {
    RetryBudget out;
    number(rb, "percent", out.percent, 0, 100, c.doc, false);
    int64_t v = 0;
    // uint32; 0 means the default (3), as in Istio.
    if (rb.integer("minRetryConcurrency", v, 0, UINT32_MAX, false) && v > 0)
      out.min_retry_concurrency = static_cast<uint32_t>(v);
    duration(rb, "budgetInterval", out.budget_interval, Millis(0), false);
    tp.retry_budget = out;
  });
  section(f, "outlierDetection", false, c.doc, [&](Fields& o) {
    OutlierDetection out;
    int64_t v = 0;
    if (o.integer("consecutive5xxErrors", v, 0, 1000000, false)) out.consecutive_5xx_errors = static_cast<uint32_t>(v);
    duration(o, "interval", out.interval, Millis(1), false);
    duration(o, "baseEjectionTime", out.base_ejection_time, Millis(1), false);
    if (o.integer("maxEjectionPercent", v, 0, 100, false)) out.max_ejection_percent = static_cast<uint32_t>(v);
    tp.outlier_detection = out;
  });
}

}  // namespace

void parseVirtualService(Fields& spec, VirtualService& vs, Ctx& c) {
  eachItem(spec, "hosts", true, true, c.doc, [&](const YAML::Node& n, const std::string& path, int line) {
    if (!n.IsScalar()) {
      c.doc.error(line, path, "must be a Service name (got " + yaml::describe(n) + ")");
      return;
    }
    std::string why = hostProblem(n.Scalar());
    if (!why.empty()) {
      c.doc.error(line, path, why);
      return;
    }
    c.md.field_lines[path] = line;
    vs.hosts.push_back(canonicalHost(n.Scalar()));
  });
  eachItem(spec, "http", false, false, c.doc,
           [&](const YAML::Node& n, const std::string& path, int line) { httpRoute(n, path, line, vs, c); });
  eachItem(spec, "tcp", false, false, c.doc,
           [&](const YAML::Node& n, const std::string& path, int line) { tcpRoute(n, path, line, vs, c); });
  if (vs.http.empty() && vs.tcp.empty() && spec.valid()) c.doc.error(spec.line(), "spec", "needs http or tcp routes");
}

void parseDestinationRule(Fields& spec, DestinationRule& dr, Ctx& c) {
  host(spec, "host", dr.host, c);
  section(spec, "trafficPolicy", false, c.doc, [&](Fields& f) { trafficPolicy(f, dr.traffic_policy, c); });
  std::set<std::string> names;
  eachItem(spec, "subsets", false, false, c.doc, [&](const YAML::Node& n, const std::string& path, int line) {
    Fields s(c.doc, n, path, line);
    if (!s.valid()) return;
    Subset sub;
    if (s.checked("name", sub.name, true, labelProblem) && !names.insert(sub.name).second)
      c.doc.error(s.lineOf("name"), s.field("name"), "subset \"" + sub.name + "\" is defined twice");
    s.labels("labels", sub.labels, false);
    section(s, "trafficPolicy", false, c.doc, [&](Fields& f) {
      sub.traffic_policy.emplace();
      trafficPolicy(f, *sub.traffic_policy, c);
    });
    s.finish();
    dr.subsets.push_back(std::move(sub));
  });
}

}  // namespace offcore::mesh::detail
