#include "mesh/xds/snapshot_json.h"

namespace offcore::mesh::xds {

using nlohmann::json;

namespace {

json stringMatch(const StringMatch& m) {
  const char* k = m.kind == StringMatch::Kind::kExact    ? "exact"
                  : m.kind == StringMatch::Kind::kPrefix ? "prefix"
                                                         : "regex";
  return json{{k, m.value}};
}

json destination(const RouteDestination& d) {
  json j{{"host", d.destination.host}};
  if (!d.destination.subset.empty()) j["subset"] = d.destination.subset;
  if (d.destination.port) j["port"] = d.destination.port;
  if (d.weight) j["weight"] = d.weight;
  return j;
}

json policy(const TrafficPolicy& tp) {
  json j = json::object();
  if (tp.load_balancer) {
    static const char* names[] = {"ROUND_ROBIN", "LEAST_REQUEST", "RANDOM"};
    j["loadBalancer"] = names[static_cast<int>(tp.load_balancer->simple)];
  }
  if (tp.connection_pool) {
    const auto& p = *tp.connection_pool;
    j["connectionPool"] = {{"maxConnections", p.max_connections},
                           {"connectTimeoutMs", p.connect_timeout.count()},
                           {"http1MaxPendingRequests", p.http1_max_pending_requests},
                           {"http2MaxRequests", p.http2_max_requests},
                           {"maxRetries", p.max_retries}};
  }
  if (tp.retry_budget)
    j["retryBudget"] = {{"percent", tp.retry_budget->percent},
                        {"minRetryConcurrency", tp.retry_budget->min_retry_concurrency},
                        {"budgetIntervalMs", tp.retry_budget->budget_interval.count()}};
  if (tp.outlier_detection) {
    const auto& o = *tp.outlier_detection;
    j["outlierDetection"] = {{"consecutive5xxErrors", o.consecutive_5xx_errors},
                             {"intervalMs", o.interval.count()},
                             {"baseEjectionTimeMs", o.base_ejection_time.count()},
                             {"maxEjectionPercent", o.max_ejection_percent}};
  }
  return j;
}

json httpRoute(const HttpRoute& r) {
  json j{{"name", r.name}, {"match", json::array()}, {"route", json::array()}};
  for (const auto& m : r.match) {
    json mj = json::object();
    if (m.uri) mj["uri"] = stringMatch(*m.uri);
    if (m.method) mj["method"] = stringMatch(*m.method);
    if (m.authority) mj["authority"] = stringMatch(*m.authority);
    for (const auto& [h, sm] : m.headers) mj["headers"][h] = stringMatch(sm);
    j["match"].push_back(mj);
  }
  for (const auto& d : r.route) j["route"].push_back(destination(d));
  if (r.timeout.count()) j["timeoutMs"] = r.timeout.count();
  if (r.idle_timeout) j["idleTimeoutMs"] = r.idle_timeout->count();
  if (r.retries)
    j["retries"] = {{"attempts", r.retries->attempts},
                    {"perTryTimeoutMs", r.retries->per_try_timeout.count()},
                    {"retryOn", r.retries->retry_on}};
  return j;
}

}  // namespace

json snapshotToJson(const Snapshot& s) {
  json j{{"version", s.version},
         {"services", json::array()},
         {"virtualServices", json::array()},
         {"destinationRules", json::array()}};
  for (const auto& svc : s.services) {
    json sj{{"name", svc.name}, {"vip", svc.vip}, {"ports", json::array()}, {"endpoints", json::array()}};
    for (const auto& p : svc.ports) {
      json pj{{"name", p.name}, {"port", p.port}, {"targetPort", p.target_port}, {"appProtocol", p.app_protocol}};
      if (p.stream_idle_timeout) pj["streamIdleTimeoutMs"] = p.stream_idle_timeout->count();
      sj["ports"].push_back(pj);
    }
    for (const auto& e : svc.endpoints) {
      json ej{{"ip", e.ip}, {"healthy", e.healthy}, {"labels", e.labels}};
      if (e.port) ej["port"] = e.port;
      sj["endpoints"].push_back(ej);
    }
    j["services"].push_back(sj);
  }
  for (const auto& vs : s.config.virtual_services) {
    json vj{{"name", vs.name}, {"hosts", vs.hosts}, {"http", json::array()}, {"tcp", json::array()}};
    for (const auto& r : vs.http) vj["http"].push_back(httpRoute(r));
    for (const auto& t : vs.tcp) {
      json tj{{"port", t.port}, {"route", json::array()}};
      for (const auto& d : t.route) tj["route"].push_back(destination(d));
      vj["tcp"].push_back(tj);
    }
    j["virtualServices"].push_back(vj);
  }
  for (const auto& dr : s.config.destination_rules) {
    json dj{
        {"name", dr.name}, {"host", dr.host}, {"trafficPolicy", policy(dr.traffic_policy)}, {"subsets", json::array()}};
    for (const auto& sub : dr.subsets) {
      json sj{{"name", sub.name}, {"labels", sub.labels}};
      if (sub.traffic_policy) sj["trafficPolicy"] = policy(*sub.traffic_policy);
      dj["subsets"].push_back(sj);
    }
    j["destinationRules"].push_back(dj);
  }
  return j;
}

json updateToJson(const XdsUpdate& u) {
  return json{{"versions", u.versions}, {"snapshot", snapshotToJson(u.snapshot)}};
}

}  // namespace offcore::mesh::xds
