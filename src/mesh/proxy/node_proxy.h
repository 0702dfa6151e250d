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
// (HBONE, mTLS), a plain pod elsewhere is not intercepted at all.
#pragma once

#include <map>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>
#include "base/event_loop.h"
#include "base/metrics.h"
#include "mesh/config/snapshot.h"
#include "mesh/proxy/interception.h"
#include "mesh/proxy/pump.h"
#include "mesh/transport.h"

namespace offcore::mesh {

class TcpListener;

struct NodeProxyOptions {
  std::string node;     // this node
  std::string node_ip;  // its fabric address (HBONE)
  InterceptionPorts ports;
  size_t max_connections = 4096;  // proxied connections at once (fds: 2 each, limit 20000)
  Millis connect_timeout{5000};
};

// What the proxy needs to know about a tunnel it accepted.
struct TunnelRequest {
  std::string target_ip;
  uint16_t target_port = 0;
  std::string source_ip;      // the client pod's address (Forwarded: for=)
  std::string peer_identity;  // the peer proxy's certificate: the client workload's SPIFFE ID
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
  size_t activeConnections() const { return pumps_.size(); }
  // Resets every connection still open.
  void abortAll();

  void setSnapshot(std::shared_ptr<const Snapshot> snapshot);
  std::shared_ptr<const Snapshot> snapshot() const { return snapshot_; }

  // A tunnel from another node's proxy (HBONE): checks and connects it.
  // Returns an error (-> 403/503 to the peer) or takes the stream.
  Status acceptTunnel(const TunnelRequest& request, std::unique_ptr<Transport>& stream);

  nlohmann::json statusJson() const;
  MetricsRegistry& metrics() { return metrics_; }

 private:
  void onOutbound(std::unique_ptr<Transport> down);
  void onInbound(std::unique_ptr<Transport> down);
  // Connects `target` and pumps `down` to it; labels name the pair in metrics.
  void connectAndPump(std::unique_ptr<Transport> down, const ConnectTarget& target, const std::string& kind,
                      const MetricsRegistry::Labels& labels);
  bool overLimit(const std::string& kind);

  EventLoop& loop_;
  NodeProxyOptions options_;
  Connector& upstream_;
  std::unique_ptr<TcpListener> outbound_, inbound_;
  std::shared_ptr<const Snapshot> snapshot_;
  std::map<uint64_t, std::unique_ptr<Pump>> pumps_;
  uint64_t next_id_ = 1;
  size_t connecting_ = 0;
  std::map<std::string, uint64_t> rr_;  // round-robin cursors by service:port
  MetricsRegistry metrics_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace offcore::mesh
