// The xDS client takes DiscoveryResponses from a control plane: any bytes
// must decode to an ACK or a NACK, never a crash, and a NACK must leave the
// last good resources as they were. The fuzzer's bytes are one response,
// fed to a client that already holds a complete configuration.
#include <cstddef>
#include <cstdint>

#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb.h"
#include "mesh/xds/ads_state.h"

namespace {

using namespace offcore::mesh::xds;

template <typename Msg>
DiscoveryResponse one(const char* type, const Msg& m) {
  DiscoveryResponse r;
  r.set_type_url(type);
  r.set_version_info("1");
  r.set_nonce("n");
  r.add_resources()->PackFrom(m);
  return r;
}

void bringUp(AdsState& s) {
  const std::string c = "outbound|80||web";
  envoy::config::listener::v3::Listener l;
  l.set_name("l");
  l.mutable_address()->mutable_socket_address()->set_address("10.96.0.10");
  l.mutable_address()->mutable_socket_address()->set_port_value(80);
  envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager h;
  h.mutable_rds()->set_route_config_name("r");
  l.add_filter_chains()->add_filters()->mutable_typed_config()->PackFrom(h);
  envoy::config::route::v3::RouteConfiguration rc;
  rc.set_name("r");
  auto* vh = rc.add_virtual_hosts();
  vh->add_domains("web");
  auto* route = vh->add_routes();
  route->mutable_match()->set_prefix("/");
  route->mutable_route()->set_cluster(c);
  envoy::config::cluster::v3::Cluster cl;
  cl.set_name(c);
  cl.set_type(envoy::config::cluster::v3::Cluster::EDS);
  envoy::config::endpoint::v3::ClusterLoadAssignment cla;
  cla.set_cluster_name(c);
  auto* sa = cla.add_endpoints()->add_lb_endpoints()->mutable_endpoint()->mutable_address()->mutable_socket_address();
  sa->set_address("10.1.0.2");
  sa->set_port_value(8080);
  s.onConnect();
  (void)s.onResponse(one(kListenerType, l));
  (void)s.onResponse(one(kClusterType, cl));
  (void)s.onResponse(one(kRouteType, rc));
  (void)s.onResponse(one(kEndpointType, cla));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 64 * 1024) return 0;
  DiscoveryResponse resp;
  if (!resp.ParseFromArray(data, static_cast<int>(size))) return 0;
  AdsState s(envoy::config::core::v3::Node{});
  bringUp(s);
  auto before = s.resources().listeners.size() + s.resources().routes.size() + s.resources().clusters.size() +
                s.resources().endpoints.size();
  auto out = s.onResponse(resp);
  if (out.requests.empty()) __builtin_trap();  // every response is answered
  if (!out.nack.empty()) {
    auto after = s.resources().listeners.size() + s.resources().routes.size() + s.resources().clusters.size() +
                 s.resources().endpoints.size();
    if (after != before || !out.requests[0].has_error_detail()) __builtin_trap();
  }
  if (out.update) (void)out.update->snapshot.services.size();
  return 0;
}
