// Route matching: which Service, route and destination a request goes to,
// from a Snapshot compiled once (regexes, host/VIP indexes) per config
// version. Immutable after build(): the proxy holds it by
// shared_ptr<const RouteTable>, so a config swap applies to the next request.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "base/regex.h"
#include "mesh/config/snapshot.h"
#include "mesh/route/random.h"

namespace offcore::mesh::route {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct RequestAttrs {
  std::string authority;  // Host header ("web", "web:8080", "web.ns.svc.cluster.local")
  std::string dst_ip;     // original destination (the VIP the client dialled)
  uint16_t dst_port = 0;
  std::string method;
  std::string path;  // without the query
  const HeaderList* headers = nullptr;
};

// The upstream cluster: a Service's endpoints on one port, optionally a subset.
struct ClusterKey {
  std::string service, subset;
  uint16_t port = 0;  // service port
  std::string str() const { return service + (subset.empty() ? "" : "|" + subset) + ":" + std::to_string(port); }
  auto operator<=>(const ClusterKey&) const = default;
};

struct RouteResult {
  enum class Kind { kRoute, kPassthrough, kNoRoute } kind = Kind::kNoRoute;
  const MeshService* service = nullptr;  // the requested host
  const HttpRoute* route = nullptr;      // nullptr = the default route
  std::string route_name;                // "<vs>/<route or index>" or "default"
  ClusterKey cluster;                    // the picked destination
  std::string why;                       // kNoRoute: for the 404 body
};

class RouteTable {
 public:
  static std::shared_ptr<const RouteTable> build(std::shared_ptr<const Snapshot> snapshot);

  // First matching route of the first VirtualService for the host; a host
  // with no VirtualService routes to all its endpoints. A destination that
  // is not a Service passes through to dst_ip:dst_port.
  RouteResult match(const RequestAttrs& req, Random& random) const;

  // The Service's endpoints that belong to the cluster (subset labels) with
  // their target port; unhealthy ones are left out.
  std::vector<MeshEndpoint> endpoints(const ClusterKey& key) const;
  // The DestinationRule policy for the cluster (subset fields override).
  TrafficPolicy policy(const ClusterKey& key) const;

  const Snapshot& snapshot() const { return *snapshot_; }
  const MeshService* service(const std::string& name) const;

 private:
  bool matches(const HttpMatch& m, const RequestAttrs& req) const;
  bool matchString(const StringMatch& m, const std::string& value) const;
  const MeshService* resolve(const RequestAttrs& req) const;

  std::shared_ptr<const Snapshot> snapshot_;
  std::map<std::string, const MeshService*> by_name_, by_vip_;
  std::map<std::string, std::vector<const VirtualService*>> vs_by_host_;
  std::map<std::string, const DestinationRule*> dr_by_host_;
  std::map<const StringMatch*, Regex> regexes_;
};

// Picks one of the weighted destinations (weights need not sum to 100).
const RouteDestination* pickWeighted(const std::vector<RouteDestination>& dests, Random& random);

}  // namespace offcore::mesh::route
