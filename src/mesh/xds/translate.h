// xDS resources -> the mesh's Snapshot. Pure functions: no I/O, no state;
// the ADS bookkeeping (ads_state.h) keeps the last good resources and calls
// these. Everything outside the subset in src/mesh/xds/README.md that would
// change where or how traffic goes is an error (the client NACKs it); fields
// the protos here leave out are ignored.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/endpoint/v3/endpoint.pb.h"
#include "envoy/config/listener/v3/listener.pb.h"
#include "envoy/config/route/v3/route.pb.h"
#include "mesh/config/snapshot.h"

namespace offcore::mesh::xds {

inline constexpr const char* kListenerType = "type.googleapis.com/envoy.config.listener.v3.Listener";
inline constexpr const char* kRouteType = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
inline constexpr const char* kClusterType = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
inline constexpr const char* kEndpointType = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
inline constexpr const char* kHcmType =
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
inline constexpr const char* kTcpProxyType =
    "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";

// The label an endpoint carries when the control plane lists it in the
// assignment of a subset cluster; the subset's DestinationRule selects on it.
std::string subsetLabel(const std::string& subset);

// Istio's "outbound|<port>|<subset>|<host>" -> {canonical host, subset, port};
// a name without '|' is a bare host (port 0, no subset).
Result<Destination> parseClusterName(const std::string& name);

// What one listener says: a service port at VIP:port, HTTP (routes by name
// or inline) or TCP (to one cluster).
struct ListenerInfo {
  std::string name;
  std::string vip;  // "" for 0.0.0.0 (the hosts come from the routes)
  uint16_t port = 0;
  bool http = false;
  std::string rds_name;  // HTTP through RDS
  bool has_inline_routes = false;
  envoy::config::route::v3::RouteConfiguration inline_routes;
  std::string tcp_cluster;  // TCP
  // HttpConnectionManager.stream_idle_timeout: unset = the proxy's default.
  std::optional<Millis> stream_idle_timeout;
};
Result<ListenerInfo> translateListener(const envoy::config::listener::v3::Listener& l);

// Every virtual host of a RouteConfiguration as a VirtualService (hosts =
// canonical domains, routes in order).
Result<std::vector<VirtualService>> translateRoutes(const envoy::config::route::v3::RouteConfiguration& rc);

// A cluster's traffic policy (lb_policy, circuit breaker thresholds of the
// DEFAULT priority, connect_timeout, outlier consecutive_5xx). Refuses a
// discovery type other than EDS and STATIC without endpoints.
Result<TrafficPolicy> translateCluster(const envoy::config::cluster::v3::Cluster& c);
// The EDS service name a cluster asks endpoints for.
std::string edsName(const envoy::config::cluster::v3::Cluster& c);

// One assignment's endpoints (ip, port, healthy, labels from the "istio"
// filter metadata's string fields).
Result<std::vector<MeshEndpoint>> translateEndpoints(const envoy::config::endpoint::v3::ClusterLoadAssignment& cla);

// The last good resources of every type, by name.
struct Resources {
  std::map<std::string, envoy::config::listener::v3::Listener> listeners;
  std::map<std::string, envoy::config::route::v3::RouteConfiguration> routes;
  std::map<std::string, envoy::config::cluster::v3::Cluster> clusters;
  std::map<std::string, envoy::config::endpoint::v3::ClusterLoadAssignment> endpoints;
};

// The RDS / EDS names the listeners and clusters refer to.
std::vector<std::string> referencedRoutes(const Resources& r);
std::vector<std::string> referencedEndpoints(const Resources& r);

// Whether every referenced route configuration and assignment is present,
// and every cluster a route names exists; `missing` says what is not.
bool complete(const Resources& r, std::string* missing);

// The whole Snapshot (version 0; the caller numbers it). Call only when
// complete(); an error means the resources contradict each other.
Result<Snapshot> buildSnapshot(const Resources& r);

}  // namespace offcore::mesh::xds
