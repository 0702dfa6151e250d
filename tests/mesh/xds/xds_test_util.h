// Builders for xDS resources in the shape Istio sends, shared by the xDS
// unit tests.
#pragma once

#include <string>

#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/endpoint/v3/endpoint.pb.h"
#include "envoy/config/listener/v3/listener.pb.h"
#include "envoy/config/route/v3/route.pb.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb.h"
#include "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.pb.h"
#include "envoy/service/discovery/v3/discovery.pb.h"

namespace offcore::mesh::xds::testing {

inline envoy::config::listener::v3::Listener httpListener(const std::string& vip, uint32_t port,
                                                          const std::string& rds) {
  envoy::config::listener::v3::Listener l;
  l.set_name(vip + "_" + std::to_string(port));
  l.mutable_address()->mutable_socket_address()->set_address(vip);
  l.mutable_address()->mutable_socket_address()->set_port_value(port);
  envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager h;
  h.mutable_rds()->set_route_config_name(rds);
  auto* f = l.add_filter_chains()->add_filters();
  f->set_name("envoy.filters.network.http_connection_manager");
  f->mutable_typed_config()->PackFrom(h);
  return l;
}

inline envoy::config::listener::v3::Listener tcpListener(const std::string& vip, uint32_t port,
                                                         const std::string& cluster) {
  envoy::config::listener::v3::Listener l;
  l.set_name(vip + "_" + std::to_string(port));
  l.mutable_address()->mutable_socket_address()->set_address(vip);
  l.mutable_address()->mutable_socket_address()->set_port_value(port);
  envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy t;
  t.set_cluster(cluster);
  l.add_filter_chains()->add_filters()->mutable_typed_config()->PackFrom(t);
  return l;
}

// "web:80" with one virtual host for web, routes "/api" -> v2, "/" -> v1.
inline envoy::config::route::v3::RouteConfiguration webRoutes(uint32_t v1_weight = 0) {
  envoy::config::route::v3::RouteConfiguration rc;
  rc.set_name("web:80");
  auto* vh = rc.add_virtual_hosts();
  vh->set_name("web.default.svc.cluster.local:80");
  vh->add_domains("web.default.svc.cluster.local");
  vh->add_domains("web");
  vh->add_domains("web:80");
  vh->add_domains("10.96.0.10");
  auto* r0 = vh->add_routes();
  r0->set_name("api");
  r0->mutable_match()->set_prefix("/api");
  auto* h = r0->mutable_match()->add_headers();
  h->set_name("X-Canary");
  h->mutable_string_match()->set_exact("1");
  r0->mutable_route()->set_cluster("outbound|80|v2|web.default.svc.cluster.local");
  auto* r1 = vh->add_routes();
  r1->mutable_match()->set_prefix("/");
  if (v1_weight) {
    auto* wc = r1->mutable_route()->mutable_weighted_clusters();
    auto* a = wc->add_clusters();
    a->set_name("outbound|80|v1|web.default.svc.cluster.local");
    a->mutable_weight()->set_value(v1_weight);
    auto* b = wc->add_clusters();
    b->set_name("outbound|80|v2|web.default.svc.cluster.local");
    b->mutable_weight()->set_value(100 - v1_weight);
  } else {
    r1->mutable_route()->set_cluster("outbound|80|v1|web.default.svc.cluster.local");
  }
  r1->mutable_route()->mutable_timeout()->set_seconds(2);
  auto* rp = r1->mutable_route()->mutable_retry_policy();
  rp->set_retry_on("5xx,connect-failure");
  rp->mutable_num_retries()->set_value(3);
  rp->mutable_per_try_timeout()->set_nanos(250000000);
  return rc;
}

inline envoy::config::cluster::v3::Cluster edsCluster(const std::string& name) {
  envoy::config::cluster::v3::Cluster c;
  c.set_name(name);
  c.set_type(envoy::config::cluster::v3::Cluster::EDS);
  c.mutable_eds_cluster_config()->set_service_name(name);
  return c;
}

inline envoy::config::endpoint::v3::ClusterLoadAssignment assignment(
    const std::string& cluster, std::vector<std::pair<std::string, uint32_t>> eps,
    envoy::config::core::v3::HealthStatus health = envoy::config::core::v3::HEALTHY) {
  envoy::config::endpoint::v3::ClusterLoadAssignment cla;
  cla.set_cluster_name(cluster);
  auto* loc = cla.add_endpoints();
  for (const auto& [ip, port] : eps) {
    auto* e = loc->add_lb_endpoints();
    e->mutable_endpoint()->mutable_address()->mutable_socket_address()->set_address(ip);
    e->mutable_endpoint()->mutable_address()->mutable_socket_address()->set_port_value(port);
    e->set_health_status(health);
  }
  return cla;
}

template <typename... Msgs>
envoy::service::discovery::v3::DiscoveryResponse response(const std::string& type_url, const std::string& version,
                                                          const std::string& nonce, const Msgs&... msgs) {
  envoy::service::discovery::v3::DiscoveryResponse r;
  r.set_type_url(type_url);
  r.set_version_info(version);
  r.set_nonce(nonce);
  (r.add_resources()->PackFrom(msgs), ...);
  return r;
}

}  // namespace offcore::mesh::xds::testing
