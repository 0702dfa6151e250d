// NodeProxy: the node's one mesh proxy (docs/MESH.md). It runs in the SoC
// domain on one EventLoop and owns
//   - the outbound listener (TPROXY target for mesh pods' connections),
//   - the inbound listener (plain connections from local pods to mesh pods),
//   - the HBONE listener on the node's fabric address (tunnels from other
//     nodes' proxies), through a TunnelServer,
//   - every proxied connection (a Pump for L4, an L7 session for HTTP),
//   - the current Snapshot, replaced whole by setSnapshot().
// Where a connection goes: a Service VIP -> one of its endpoints (L4 routes
// and load balancing, or the L7 router); a pod address -> that pod. A local
// destination is reached directly from the client's own address
// (IP_TRANSPARENT), a mesh pod on another node through that node's proxy
// (HBONE, mTLS); a plain pod elsewhere is not intercepted when dialled by
// address, and as a Service's endpoint is connected like a local pod (its
// VPC's mesh return link takes the packets to the tunnel).
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>

#include <nlohmann/json.hpp>
#include "base/event_loop.h"
#include "base/metrics.h"
#include "mesh/config/snapshot.h"
#include "mesh/l7/http2_session.h"
#include "mesh/l7/http_proxy.h"
#include "mesh/proxy/interception.h"
#include "mesh/proxy/pump.h"
#include "mesh/route/random.h"
#include "mesh/transport.h"

namespace offcore::mesh {

class TcpListener;

struct NodeProxyOptions {
  std::string node;     // this node
  std::string node_ip;  // its fabric address (HBONE)
  InterceptionPorts ports;
  size_t max_connections = 4096;  // proxied connections at once (fds: 2 each, limit 20000)
  Millis connect_timeout{5000};
  // Envoy's stream_idle_timeout for L7 requests (0 = none); xDS listeners
  // and routes may override it (l7::HttpProxyOptions).
  Millis stream_idle_timeout{std::chrono::minutes(5)};
};

// What the proxy needs to know about a tunnel it accepted.
struct TunnelRequest {
  std::string target_ip;
  uint16_t target_port = 0;
  std::string source_ip;       // the client pod's address (Forwarded: for=)
  std::string peer_identity;   // the peer proxy's certificate: the client workload's SPIFFE ID
  std::string local_identity;  // the identity we presented (the client asked for it): the target's
};

class NodeProxy {
 public:
  // upstream: makes upstream transports (TCP, or HBONE for remote mesh pods).
  NodeProxy(EventLoop& loop, NodeProxyOptions options, Connector& upstream);
  ~NodeProxy();

  // Opens the listeners. Listening fds to adopt (hot restart) by name:
  // "outbound", "inbound"; missing ones are bound afresh.
  Status start(const std::map<std::string, int>& inherited = {});
  // The listening fds, for a successor.
  std::map<std::string, int> listenerFds() const;
  // Stop accepting (a successor took over); established connections go on.
  void stopAccepting();
  size_t activeConnections() const { return pumps_.size() + h1_.size() + h2_.size() + sniffing_.size(); }
  // Resets every connection still open.
  void abortAll();

  void setSnapshot(std::shared_ptr<const Snapshot> snapshot);
  std::shared_ptr<const Snapshot> snapshot() const { return snapshot_; }
  // Plain pods of other nodes the SoC routes to a mesh return link
  // (podRouteTargets): reached directly, from the client's address, like
  // local pods (the dataplane tunnels them). Others are refused.
  void setRoutedRemotePods(std::set<std::string> ips) { routed_remote_ = std::move(ips); }

  // A tunnel from another node's proxy (HBONE): checks and connects it.
  // Returns an error (EACCES -> 403, else 503 to the peer) or takes the stream.
  Status acceptTunnel(const TunnelRequest& request, std::unique_ptr<Transport>& stream);
  // The access log (JSON lines) of L7 requests.
  void setAccessLog(l7::AccessLog log);

  nlohmann::json statusJson() const;
  MetricsRegistry& metrics() { return metrics_; }

 private:
  struct Sniffing;
  // Who an accepted (TPROXY) connection is from and what it dialled.
  struct Accepted {
    std::string src_ip, dst_ip;
    uint16_t dst_port = 0;
  };
  static Accepted accepted(const Transport& t);
  void refuseConnection(Transport& down, const char* listener, const Accepted& a, const char* reason);
  void onOutbound(std::unique_ptr<Transport> down);
  void onInbound(std::unique_ptr<Transport> down);
  // L7 for a Service port: HTTP/1.1 or HTTP/2 by declaration or by sniffing.
  void startHttp(std::unique_ptr<Transport> down, const l7::SessionInfo& info, bool http2,
                 std::string_view already_read);
  void startSniff(std::unique_ptr<Transport> down, const l7::SessionInfo& info, ConnectTarget l4,
                  MetricsRegistry::Labels labels);
  void sniffed(uint64_t id, bool timed_out);
  // Which endpoint an L4 connection to a Service port goes to (TCP routes,
  // subsets, round robin over healthy endpoints); nullptr if none.
  const MeshEndpoint* pickL4(const MeshService& service, uint16_t port);
  bool authorized(const MeshWorkload& server, const std::string& source_identity, uint16_t port, const char* listener);
  // Connects `target` and pumps `down` to it; labels name the pair in metrics.
  void connectAndPump(std::unique_ptr<Transport> down, const ConnectTarget& target, const std::string& kind,
                      const MetricsRegistry::Labels& labels, std::string already_read = {});
  bool overLimit(const std::string& kind);

  EventLoop& loop_;
  NodeProxyOptions options_;
  Connector& upstream_;
  std::unique_ptr<TcpListener> outbound_, inbound_;
  std::shared_ptr<const Snapshot> snapshot_;
  std::set<std::string> routed_remote_;
  std::map<uint64_t, std::unique_ptr<Pump>> pumps_;
  route::SplitMixRandom random_;
  std::unique_ptr<l7::HttpProxyContext> http_;
  std::map<uint64_t, std::unique_ptr<l7::HttpSession>> h1_;
  std::map<uint64_t, std::unique_ptr<l7::Http2Session>> h2_;
  std::map<uint64_t, std::unique_ptr<Sniffing>> sniffing_;
  uint64_t next_id_ = 1;
  size_t connecting_ = 0;
  std::map<std::string, uint64_t> rr_;  // round-robin cursors by cluster
  uint16_t picked_port_ = 0;            // pickL4's target port of the endpoint it returned
  MetricsRegistry metrics_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace offcore::mesh
