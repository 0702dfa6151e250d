// Listeners, clusters and assignments -> Snapshot (see translate.h); route
// configurations are in translate_routes.cc.
#include "mesh/xds/translate.h"

#include <algorithm>
#include <set>

#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb.h"
#include "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.pb.h"

namespace offcore::mesh::xds {

namespace cluster = envoy::config::cluster::v3;
namespace endpoint = envoy::config::endpoint::v3;
namespace hcm = envoy::extensions::filters::network::http_connection_manager::v3;
using envoy::config::core::v3::HealthStatus;

namespace {

Millis toMillis(const google::protobuf::Duration& d) { return Millis(d.seconds() * 1000 + d.nanos() / 1000000); }

Result<uint16_t> parsePort(const std::string& s, const std::string& what) {
  if (s.empty() || s.size() > 5 || !std::all_of(s.begin(), s.end(), ::isdigit))
    return makeError(what + ": port '" + s + "' is not a number");
  auto v = std::stoul(s);
  if (v == 0 || v > 65535) return makeError(what + ": port " + s + " is out of range");
  return static_cast<uint16_t>(v);
}

// The cluster names a route configuration sends to.
void routeClusters(const envoy::config::route::v3::RouteConfiguration& rc, std::set<std::string>& out) {
  for (const auto& vh : rc.virtual_hosts())
    for (const auto& r : vh.routes()) {
      if (!r.has_route()) continue;
      if (!r.route().cluster().empty()) out.insert(r.route().cluster());
      for (const auto& cw : r.route().weighted_clusters().clusters()) out.insert(cw.name());
    }
}

MeshService& serviceFor(std::map<std::string, MeshService>& services, const std::string& host) {
  auto& s = services[host];
  s.name = host;
  return s;
}

MeshServicePort& portFor(MeshService& s, uint16_t port, const std::string& app_protocol) {
  for (auto& p : s.ports)
    if (p.port == port) {
      if (p.app_protocol.empty()) p.app_protocol = app_protocol;
      return p;
    }
  std::string prefix = app_protocol.empty() ? "port" : app_protocol;
  s.ports.push_back(MeshServicePort{prefix + "-" + std::to_string(port), port, port, app_protocol});
  return s.ports.back();
}

}  // namespace

std::string subsetLabel(const std::string& subset) { return "xds.offcore.dev/subset-" + subset; }

Result<Destination> parseClusterName(const std::string& name) {
  if (name.empty()) return makeError("an empty cluster name");
  if (name.find('|') == std::string::npos) return Destination{canonicalHost(name), "", 0};
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t i = 0; i <= name.size(); i++)
    if (i == name.size() || name[i] == '|') {
      parts.push_back(name.substr(start, i - start));
      start = i + 1;
    }
  if (parts.size() != 4 || parts[0] != "outbound" || parts[3].empty())
    return makeError("cluster '" + name + "': expected Istio's outbound|<port>|<subset>|<host>");
  OC_ASSIGN_OR_RETURN(auto port, parsePort(parts[1], "cluster '" + name + "'"));
  return Destination{canonicalHost(parts[3]), parts[2], port};
}

Result<ListenerInfo> translateListener(const envoy::config::listener::v3::Listener& l) {
  std::string where = "listener " + l.name();
  ListenerInfo out;
  out.name = l.name();
  if (!l.address().has_socket_address()) return makeError(where + ": needs a socket_address");
  const auto& sa = l.address().socket_address();
  if (sa.protocol() != envoy::config::core::v3::SocketAddress::TCP) return makeError(where + ": only TCP listeners");
  if (sa.port_specifier_case() != envoy::config::core::v3::SocketAddress::kPortValue || sa.port_value() == 0 ||
      sa.port_value() > 65535)
    return makeError(where + ": needs a port_value between 1 and 65535");
  out.port = static_cast<uint16_t>(sa.port_value());
  out.vip = (sa.address() == "0.0.0.0" || sa.address() == "::") ? "" : sa.address();
  if (l.filter_chains_size() != 1)
    return makeError(where + ": exactly one filter chain is supported (it has " +
                     std::to_string(l.filter_chains_size()) + ")");
  bool found = false;
  for (const auto& f : l.filter_chains(0).filters()) {
    if (!f.has_typed_config()) return makeError(where + ": filter " + f.name() + " has no typed_config");
    const auto& any = f.typed_config();
    if (found) return makeError(where + ": only one network filter (HttpConnectionManager or TcpProxy) is supported");
    if (any.type_url() == kHcmType) {
      hcm::HttpConnectionManager h;
      if (!any.UnpackTo(&h)) return makeError(where + ": HttpConnectionManager does not decode");
      out.http = true;
      if (h.has_rds()) {
        if (h.rds().route_config_name().empty()) return makeError(where + ": rds without route_config_name");
        out.rds_name = h.rds().route_config_name();
      } else if (h.has_route_config()) {
        out.has_inline_routes = true;
        out.inline_routes = h.route_config();
      } else {
        return makeError(where + ": HttpConnectionManager needs rds or route_config");
      }
      if (h.has_stream_idle_timeout()) {
        if (h.stream_idle_timeout().seconds() < 0 || h.stream_idle_timeout().nanos() < 0)
          return makeError(where + ": stream_idle_timeout is negative; use 0 to switch it off");
        // A positive value below 1 ms must not become 0, which switches it off.
        out.stream_idle_timeout =
            std::max(toMillis(h.stream_idle_timeout()), Millis(h.stream_idle_timeout().nanos() > 0 ? 1 : 0));
      }
    } else if (any.type_url() == kTcpProxyType) {
      envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy t;
      if (!any.UnpackTo(&t)) return makeError(where + ": TcpProxy does not decode");
      if (t.cluster().empty()) return makeError(where + ": TcpProxy needs cluster");
      out.tcp_cluster = t.cluster();
    } else {
      return makeError(where + ": filter type " + any.type_url() +
                       " is not supported (HttpConnectionManager or TcpProxy only)");
    }
    found = true;
  }
  if (!found) return makeError(where + ": no network filter");
  return out;
}

std::string edsName(const cluster::Cluster& c) {
  return c.eds_cluster_config().service_name().empty() ? c.name() : c.eds_cluster_config().service_name();
}

Result<TrafficPolicy> translateCluster(const cluster::Cluster& c) {
  std::string where = "cluster " + c.name();
  if (c.type() != cluster::Cluster::EDS)
    return makeError(where + ": discovery type " + cluster::Cluster::DiscoveryType_Name(c.type()) +
                     " is not supported (EDS only)");
  TrafficPolicy tp;
  LoadBalancer lb;
  switch (c.lb_policy()) {
    case cluster::Cluster::ROUND_ROBIN: lb.simple = LoadBalancer::Simple::kRoundRobin; break;
    case cluster::Cluster::LEAST_REQUEST: lb.simple = LoadBalancer::Simple::kLeastRequest; break;
    case cluster::Cluster::RANDOM: lb.simple = LoadBalancer::Simple::kRandom; break;
    default:
      return makeError(where + ": lb_policy " + cluster::Cluster::LbPolicy_Name(c.lb_policy()) +
                       " is not supported (ROUND_ROBIN, LEAST_REQUEST, RANDOM)");
  }
  tp.load_balancer = lb;
  if (c.has_circuit_breakers() || c.has_connect_timeout()) {
    ConnectionPool pool;
    pool.max_retries = 3;  // Envoy's default
    if (c.has_connect_timeout()) pool.connect_timeout = toMillis(c.connect_timeout());
    for (const auto& t : c.circuit_breakers().thresholds()) {
      if (t.priority() != envoy::config::core::v3::DEFAULT) continue;  // offcore has one priority
      if (t.has_max_connections()) pool.max_connections = t.max_connections().value();
      if (t.has_max_pending_requests()) pool.http1_max_pending_requests = t.max_pending_requests().value();
      if (t.has_max_requests()) pool.http2_max_requests = t.max_requests().value();
      if (t.has_max_retries()) pool.max_retries = t.max_retries().value();
      if (t.has_retry_budget()) {
        const auto& b = t.retry_budget();
        RetryBudget budget;  // Envoy's defaults: 20%, 3, no interval
        if (b.has_budget_interval()) {
          const auto& bi = b.budget_interval();
          if (bi.seconds() < 0 || bi.nanos() < 0)
            return makeError(where + ": retry_budget.budget_interval is negative");
          budget.budget_interval = toMillis(bi);
        }
        if (b.has_budget_percent()) {
          double v = b.budget_percent().value();
          if (!(v >= 0 && v <= 100)) return makeError(where + ": retry_budget.budget_percent must be 0-100");
          budget.percent = v;
        }
        if (b.has_min_retry_concurrency()) budget.min_retry_concurrency = b.min_retry_concurrency().value();
        tp.retry_budget = budget;
      }
    }
    tp.connection_pool = pool;
  }
  if (c.has_outlier_detection()) {
    const auto& o = c.outlier_detection();
    OutlierDetection od;
    od.consecutive_5xx_errors = o.has_consecutive_5xx() ? o.consecutive_5xx().value() : 5;  // Envoy's default
    if (o.has_interval()) od.interval = toMillis(o.interval());
    if (o.has_base_ejection_time()) od.base_ejection_time = toMillis(o.base_ejection_time());
    if (o.has_max_ejection_percent()) od.max_ejection_percent = o.max_ejection_percent().value();
    tp.outlier_detection = od;
  }
  return tp;
}

Result<std::vector<MeshEndpoint>> translateEndpoints(const endpoint::ClusterLoadAssignment& cla) {
  std::string where = "assignment " + cla.cluster_name();
  std::vector<MeshEndpoint> out;
  for (const auto& loc : cla.endpoints())
    for (const auto& lbe : loc.lb_endpoints()) {
      if (!lbe.has_endpoint() || !lbe.endpoint().address().has_socket_address())
        return makeError(where + ": an endpoint without a socket address");
      const auto& sa = lbe.endpoint().address().socket_address();
      if (sa.port_specifier_case() != envoy::config::core::v3::SocketAddress::kPortValue || sa.port_value() == 0 ||
          sa.port_value() > 65535)
        return makeError(where + ": endpoint " + sa.address() + " needs a port_value between 1 and 65535");
      MeshEndpoint ep;
      ep.ip = sa.address();
      ep.port = static_cast<uint16_t>(sa.port_value());
      auto h = lbe.health_status();
      ep.healthy = h == HealthStatus::UNKNOWN || h == HealthStatus::HEALTHY || h == HealthStatus::DEGRADED;
      auto md = lbe.metadata().filter_metadata().find("istio");
      if (md != lbe.metadata().filter_metadata().end())
        for (const auto& [k, v] : md->second.fields())
          if (v.kind_case() == google::protobuf::Value::kStringValue) ep.labels[k] = v.string_value();
      out.push_back(std::move(ep));
    }
  return out;
}

std::vector<std::string> referencedRoutes(const Resources& r) {
  std::set<std::string> names;
  for (const auto& [_, l] : r.listeners) {
    auto info = translateListener(l);
    if (info.ok() && !info->rds_name.empty()) names.insert(info->rds_name);
  }
  return {names.begin(), names.end()};
}

std::vector<std::string> referencedEndpoints(const Resources& r) {
  std::set<std::string> names;
  for (const auto& [_, c] : r.clusters) names.insert(edsName(c));
  return {names.begin(), names.end()};
}

bool complete(const Resources& r, std::string* missing) {
  std::set<std::string> clusters;
  for (const auto& [_, l] : r.listeners) {
    auto info = translateListener(l);
    if (!info.ok()) continue;
    if (!info->tcp_cluster.empty()) clusters.insert(info->tcp_cluster);
    if (info->has_inline_routes) routeClusters(info->inline_routes, clusters);
    if (info->rds_name.empty()) continue;
    auto rc = r.routes.find(info->rds_name);
    if (rc == r.routes.end()) {
      *missing = "route configuration " + info->rds_name;
      return false;
    }
    routeClusters(rc->second, clusters);
  }
  for (const auto& name : clusters)
    if (!r.clusters.count(name)) {
      *missing = "cluster " + name;
      return false;
    }
  for (const auto& name : referencedEndpoints(r))
    if (!r.endpoints.count(name)) {
      *missing = "assignment " + name;
      return false;
    }
  return true;
}

Result<Snapshot> buildSnapshot(const Resources& r) {
  Snapshot snap;
  std::map<std::string, MeshService> services;
  std::set<std::string> vs_seen;
  for (const auto& [_, l] : r.listeners) {
    OC_ASSIGN_OR_RETURN(auto info, translateListener(l));
    std::vector<std::string> hosts;
    if (!info.tcp_cluster.empty()) {
      OC_ASSIGN_OR_RETURN(auto d, parseClusterName(info.tcp_cluster));
      hosts.push_back(d.host);
      VirtualService vs;
      vs.name = info.name;
      vs.hosts = {d.host};
      vs.tcp.push_back(TcpRoute{info.port, {RouteDestination{d, 0}}});
      snap.config.virtual_services.push_back(std::move(vs));
    } else {
      const auto& rc = info.has_inline_routes ? info.inline_routes : r.routes.at(info.rds_name);
      OC_ASSIGN_OR_RETURN(auto vss, translateRoutes(rc));
      for (auto& vs : vss) {
        hosts.insert(hosts.end(), vs.hosts.begin(), vs.hosts.end());
        if (info.has_inline_routes) vs.name = info.name + "/" + vs.name;
        if (vs_seen.insert(vs.name).second) snap.config.virtual_services.push_back(std::move(vs));
      }
    }
    for (const auto& h : hosts) {
      auto& s = serviceFor(services, h);
      if (s.vip.empty()) s.vip = info.vip;
      auto& port = portFor(s, info.port, info.http ? "http" : "tcp");
      if (info.stream_idle_timeout) port.stream_idle_timeout = info.stream_idle_timeout;
    }
  }
  std::map<std::string, DestinationRule> rules;
  for (const auto& [name, c] : r.clusters) {
    OC_ASSIGN_OR_RETURN(auto d, parseClusterName(name));
    OC_ASSIGN_OR_RETURN(auto tp, translateCluster(c));
    auto& s = serviceFor(services, d.host);
    MeshServicePort* port = d.port ? &portFor(s, d.port, "") : nullptr;
    auto& dr = rules[d.host];
    dr.name = dr.host = d.host;
    if (d.subset.empty()) {
      if (!dr.traffic_policy.load_balancer) dr.traffic_policy = tp;
    } else if (std::none_of(dr.subsets.begin(), dr.subsets.end(), [&](auto& x) { return x.name == d.subset; })) {
      dr.subsets.push_back(Subset{d.subset, {{subsetLabel(d.subset), "true"}}, tp});
    }
    auto cla = r.endpoints.find(edsName(c));
    if (cla == r.endpoints.end()) return makeError("cluster " + name + ": no assignment " + edsName(c));
    OC_ASSIGN_OR_RETURN(auto eps, translateEndpoints(cla->second));
    if (port && !eps.empty()) {
      for (const auto& ep : eps)
        if (ep.port != eps[0].port)
          return makeError("cluster " + name + ": endpoints use different ports; offcore needs one per service port");
      port->target_port = eps[0].port;
    }
    for (auto& ep : eps) {
      if (port) ep.port = 0;  // the service port's target_port
      auto it = std::find_if(s.endpoints.begin(), s.endpoints.end(),
                             [&](const MeshEndpoint& e) { return e.ip == ep.ip && e.port == ep.port; });
      if (it == s.endpoints.end()) {
        s.endpoints.push_back(ep);
        it = s.endpoints.end() - 1;
      } else {
        it->healthy = it->healthy && ep.healthy;
        it->labels.insert(ep.labels.begin(), ep.labels.end());
      }
      if (!d.subset.empty()) it->labels[subsetLabel(d.subset)] = "true";
    }
  }
  for (auto& [_, dr] : rules) snap.config.destination_rules.push_back(std::move(dr));
  for (auto& [_, s] : services) {
    std::sort(s.ports.begin(), s.ports.end(), [](auto& a, auto& b) { return a.port < b.port; });
    std::sort(s.endpoints.begin(), s.endpoints.end(),
              [](auto& a, auto& b) { return std::tie(a.ip, a.port) < std::tie(b.ip, b.port); });
    snap.services.push_back(std::move(s));
  }
  return snap;
}

}  // namespace offcore::mesh::xds
