#include "mesh/proxy/node_proxy.h"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <random>

#include "mesh/net/tcp_transport.h"
#include "mesh/proxy/peer_auth.h"
#include "mesh/proxy/sniff.h"
#include "mesh/proxy/workloads.h"
#include "mesh/route/policy.h"
#include "mesh/route/router.h"

namespace offcore::mesh {

namespace {

using json = nlohmann::json;

// "ip:port" -> (ip, port); port 0 when malformed.
std::pair<std::string, uint16_t> splitHostPort(const std::string& s) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos) return {s, 0};
  int port = std::atoi(s.c_str() + colon + 1);
  return {s.substr(0, colon), static_cast<uint16_t>(port > 0 && port < 65536 ? port : 0)};
}

const char* kOpened = "offcore_mesh_tcp_connections_opened_total";
const char* kClosed = "offcore_mesh_tcp_connections_closed_total";
const char* kSent = "offcore_mesh_tcp_sent_bytes_total";
const char* kReceived = "offcore_mesh_tcp_received_bytes_total";
const char* kRefused = "offcore_mesh_tcp_connections_refused_total";

}  // namespace

// A connection whose first bytes decide L7 or L4.
struct NodeProxy::Sniffing : Transport::Callbacks {
  NodeProxy& proxy;
  uint64_t id;
  std::unique_ptr<Transport> down;
  l7::SessionInfo info;
  ConnectTarget l4;
  MetricsRegistry::Labels labels;
  std::string bytes;
  EventLoop::TimerId timer = 0;
  bool closed = false;

  Sniffing(NodeProxy& p, uint64_t i) : proxy(p), id(i) {}
  void onData(std::string_view b) override {
    bytes.append(b);
    if (sniffProtocol(bytes) != Sniffed::kNeedMore) proxy.sniffed(id, false);
  }
  void onEnd() override { proxy.sniffed(id, false); }
  void onClosed(const Status&) override {
    closed = true;
    proxy.sniffed(id, false);
  }
};

NodeProxy::NodeProxy(EventLoop& loop, NodeProxyOptions options, Connector& upstream)
    : loop_(loop), options_(std::move(options)), upstream_(upstream), random_(std::random_device{}()) {
  l7::HttpProxyOptions ho;
  ho.local_node = options_.node;
  ho.stream_idle_timeout = options_.stream_idle_timeout;
  http_ = std::make_unique<l7::HttpProxyContext>(loop_, upstream_, metrics_, random_, ho);
  metrics_.describe(kOpened, "counter", "TCP connections the node proxy opened, by source and destination");
  metrics_.describe(kClosed, "counter", "TCP connections that ended (reset=true when not by two FINs)");
  metrics_.describe(kSent, "counter", "Bytes from the source workload to the destination");
  metrics_.describe(kReceived, "counter", "Bytes from the destination back to the source workload");
  metrics_.describe(kRefused, "counter", "Connections the proxy refused, by reason");
}

NodeProxy::~NodeProxy() {
  *alive_ = false;
  for (auto& [id, sn] : sniffing_) {
    if (sn->timer) loop_.cancelTimer(sn->timer);
    if (sn->down) sn->down->setCallbacks(nullptr);
  }
  // Sessions before the context they use.
  h1_.clear();
  h2_.clear();
  pumps_.clear();
}

void NodeProxy::setAccessLog(l7::AccessLog log) { http_->setAccessLog(std::move(log)); }

Status NodeProxy::start(const std::map<std::string, int>& inherited) {
  TcpListenOptions opts;
  opts.transparent = true;
  auto open = [&](const std::string& name, uint16_t port,
                  TcpListener::OnAccept on_accept) -> Result<std::unique_ptr<TcpListener>> {
    if (auto it = inherited.find(name); it != inherited.end()) return TcpListener::fromFd(loop_, it->second, on_accept);
    return TcpListener::listen(loop_, "0.0.0.0", port, opts, on_accept);
  };
  OC_ASSIGN_OR_RETURN(outbound_, open("outbound", options_.ports.outbound,
                                      [this](std::unique_ptr<Transport> t) { onOutbound(std::move(t)); }));
  OC_ASSIGN_OR_RETURN(inbound_, open("inbound", options_.ports.inbound,
                                     [this](std::unique_ptr<Transport> t) { onInbound(std::move(t)); }));
  return okStatus();
}

std::map<std::string, int> NodeProxy::listenerFds() const {
  std::map<std::string, int> fds;
  if (outbound_) fds["outbound"] = outbound_->fd();
  if (inbound_) fds["inbound"] = inbound_->fd();
  return fds;
}

void NodeProxy::stopAccepting() {
  if (outbound_) outbound_->pause(true);
  if (inbound_) inbound_->pause(true);
}

void NodeProxy::abortAll() {
  // abort() reports through done(), which erases: walk a copy of the ids.
  std::vector<uint64_t> ids;
  for (const auto& [id, p] : pumps_) ids.push_back(id);
  for (uint64_t id : ids) {
    if (auto it = pumps_.find(id); it != pumps_.end()) it->second->abort();
  }
  h1_.clear();
  h2_.clear();
}

void NodeProxy::setSnapshot(std::shared_ptr<const Snapshot> snapshot) {
  snapshot_ = std::move(snapshot);
  http_->setRoutes(route::RouteTable::build(snapshot_));
}

bool NodeProxy::authorized(const MeshWorkload& server, const std::string& source_identity, uint16_t port,
                           const char* listener) {
  route::AuthzRequest req;
  req.source_principal = source_identity;
  req.source_namespace = route::namespaceOf(source_identity);
  req.port = port;
  auto d = route::authorize(snapshot_->config.authorization_policies, server.ns, server.labels, req);
  if (d.allowed) return true;
  metrics_.add(kRefused, {{"listener", listener}, {"reason", "authorization"}, {"policy", d.policy}}, 1);
  return false;
}

const MeshEndpoint* NodeProxy::pickL4(const MeshService& service, uint16_t port) {
  route::ClusterKey key{service.name, "", port};
  // The first VirtualService TCP route for this host and port decides.
  for (const auto& vs : snapshot_->config.virtual_services) {
    if (std::find(vs.hosts.begin(), vs.hosts.end(), service.name) == vs.hosts.end()) continue;
    for (const auto& tr : vs.tcp) {
      if (tr.port != 0 && tr.port != port) continue;
      if (const RouteDestination* d = route::pickWeighted(tr.route, random_)) {
        key = {d->destination.host, d->destination.subset, d->destination.port ? d->destination.port : port};
      }
      goto picked;
    }
  }
picked:
  auto routes = http_->routes();
  if (!routes) return nullptr;
  auto eps = routes->endpoints(key);
  const MeshService* target = routes->service(key.service);
  if (eps.empty() || !target) return nullptr;
  uint64_t& cursor = rr_[key.str()];
  const MeshEndpoint& chosen = eps[cursor++ % eps.size()];
  // endpoints() returns copies with the target port: find the snapshot's own.
  for (const auto& e : target->endpoints) {
    if (e.ip == chosen.ip) {
      picked_port_ = chosen.port;
      return &e;
    }
  }
  return nullptr;
}

NodeProxy::Accepted NodeProxy::accepted(const Transport& t) {
  auto dst = splitHostPort(t.localAddress());
  return {splitHostPort(t.remoteAddress()).first, dst.first, dst.second};
}

void NodeProxy::refuseConnection(Transport& down, const char* listener, const Accepted& a, const char* reason) {
  metrics_.add(kRefused, {{"listener", listener}, {"reason", reason}}, 1);
  spdlog::debug("{} {} -> {}:{} refused: {}", listener, a.src_ip, a.dst_ip, a.dst_port, reason);
  down.reset();
}

bool NodeProxy::overLimit(const std::string& kind) {
  if (activeConnections() + connecting_ < options_.max_connections) return false;
  metrics_.add(kRefused, {{"listener", kind}, {"reason", "overload"}}, 1);
  return true;
}

void NodeProxy::onOutbound(std::unique_ptr<Transport> down) {
  const Accepted a = accepted(*down);
  const std::string& src_ip = a.src_ip;
  const std::string& dst_ip = a.dst_ip;
  const uint16_t dst_port = a.dst_port;
  auto snap = snapshot_;
  auto refuse = [&](const char* reason) { refuseConnection(*down, "outbound", a, reason); };
  if (overLimit("outbound")) return down->reset();
  if (!snap) return refuse("no_config");
  const MeshWorkload* client = findWorkload(snap->workloads, src_ip);
  if (!client || !client->mesh || client->node != options_.node) return refuse("unknown_source");

  ConnectTarget target;
  target.source_ip = src_ip;
  target.source_identity = client->identity;
  std::string dest_name;
  const MeshService* service = nullptr;
  const MeshServicePort* sport = nullptr;
  for (const auto& s : snap->services) {
    if (s.vip != dst_ip) continue;
    for (const auto& p : s.ports) {
      if (p.port == dst_port) {
        service = &s;
        sport = &p;
      }
    }
  }
  if (service) {
    const std::string& proto = sport->app_protocol;
    l7::SessionInfo info{src_ip, client->identity, client->ns, client->name, dst_ip, dst_port};
    // HTTP/2 (h2c prior knowledge) from the client: appProtocol http2, grpc, h2c.
    bool h2 = proto == "http2" || proto == "grpc" || proto == "h2c" || proto == "kubernetes.io/h2c";
    if (proto == "http" || h2) return startHttp(std::move(down), info, h2, {});
    const MeshEndpoint* e = pickL4(*service, dst_port);
    if (!e) return refuse("no_healthy_endpoint");
    target.ip = e->ip;
    target.port = picked_port_ ? picked_port_ : (e->port ? e->port : sport->target_port);
    if (e->node != options_.node && e->mesh) {
      target.node_ip = e->node_ip;
      target.peer_identity = e->identity;
    } else if (e->node != options_.node) {
      if (!routed_remote_.count(e->ip)) return refuse("remote_endpoint_not_in_mesh");
    } else if (const MeshWorkload* sw = findWorkload(snap->workloads, e->ip);
               sw && sw->mesh && !authorized(*sw, client->identity, target.port, "outbound")) {
      return refuse("authorization");
    }
    dest_name = service->name;
    MetricsRegistry::Labels labels{
        {"source_workload", client->name}, {"destination", dest_name}, {"listener", "outbound"}};
    // No declared protocol: the first bytes decide (a gRPC or TCP port says so).
    if (proto.empty()) return startSniff(std::move(down), info, target, labels);
    return connectAndPump(std::move(down), target, "outbound", labels);
  } else {
    const MeshWorkload* w = findWorkload(snap->workloads, dst_ip);
    if (!w) return refuse("unknown_destination");
    target.ip = w->ip;
    target.port = dst_port;
    if (w->node != options_.node && w->mesh) {
      target.node_ip = w->node_ip;
      target.peer_identity = w->identity;
    } else if (w->node != options_.node) {
      if (!routed_remote_.count(w->ip)) return refuse("remote_endpoint_not_in_mesh");
    } else if (w->mesh && !authorized(*w, client->identity, dst_port, "outbound")) {
      return refuse("authorization");
    }
    dest_name = w->name;
  }
  connectAndPump(std::move(down), target, "outbound",
                 {{"source_workload", client->name}, {"destination", dest_name}, {"listener", "outbound"}});
}

void NodeProxy::onInbound(std::unique_ptr<Transport> down) {
  const Accepted a = accepted(*down);
  const std::string& src_ip = a.src_ip;
  const std::string& dst_ip = a.dst_ip;
  const uint16_t dst_port = a.dst_port;
  auto snap = snapshot_;
  auto refuse = [&](const char* reason) { refuseConnection(*down, "inbound", a, reason); };
  if (overLimit("inbound")) return down->reset();
  if (!snap) return refuse("no_config");
  const MeshWorkload* server = findWorkload(snap->workloads, dst_ip);
  if (!server || !server->mesh || server->node != options_.node) return refuse("unknown_destination");
  // Plain text from a pod outside the mesh.
  if (mtlsModeFor(snap->config, *server, dst_port) == MtlsMode::kStrict) return refuse("plaintext_strict");
  if (!authorized(*server, "", dst_port, "inbound")) return refuse("authorization");
  const MeshWorkload* client = findWorkload(snap->workloads, src_ip);
  ConnectTarget target{server->ip, dst_port, src_ip, "", "", ""};
  connectAndPump(
      std::move(down), target, "inbound",
      {{"source_workload", client ? client->name : "unknown"}, {"destination", server->name}, {"listener", "inbound"}});
}

Status NodeProxy::acceptTunnel(const TunnelRequest& req, std::unique_ptr<Transport>& stream) {
  auto snap = snapshot_;
  if (!snap) return makeError("no configuration yet");
  if (overLimit("hbone")) return makeError("overloaded", 503);
  const MeshWorkload* server = findWorkload(snap->workloads, req.target_ip);
  if (!server || !server->mesh || server->node != options_.node) {
    metrics_.add(kRefused, {{"listener", "hbone"}, {"reason", "unknown_destination"}}, 1);
    return makeError(req.target_ip + " is no mesh pod of node " + options_.node, EACCES);
  }
  // The client asked for the target's identity (SNI) and verified it: the
  // tunnel must lead to that workload and no other.
  if (!req.local_identity.empty() && req.local_identity != server->identity) {
    metrics_.add(kRefused, {{"listener", "hbone"}, {"reason", "target_identity_mismatch"}}, 1);
    return makeError(req.target_ip + " is " + server->identity + ", not " + req.local_identity, EACCES);
  }
  // The peer proves an identity with its certificate; the source address it
  // claims must be a pod with that identity, or it could spoof any pod.
  const MeshWorkload* client = findWorkload(snap->workloads, req.source_ip);
  if (!client || !client->mesh || client->identity != req.peer_identity) {
    metrics_.add(kRefused, {{"listener", "hbone"}, {"reason", "source_identity_mismatch"}}, 1);
    return makeError("source " + req.source_ip + " is not a pod of " + req.peer_identity, EACCES);
  }
  if (!authorized(*server, req.peer_identity, req.target_port, "hbone")) {
    return makeError(req.peer_identity + " may not reach " + server->name + ":" + std::to_string(req.target_port),
                     EACCES);
  }
  ConnectTarget target{server->ip, req.target_port, req.source_ip, "", "", ""};
  connectAndPump(std::move(stream), target, "hbone",
                 {{"source_workload", client->name}, {"destination", server->name}, {"listener", "hbone"}});
  return okStatus();
}

void NodeProxy::startHttp(std::unique_ptr<Transport> down, const l7::SessionInfo& info, bool http2,
                          std::string_view already_read) {
  uint64_t id = next_id_++;
  std::weak_ptr<bool> alive = alive_;
  if (http2) {
    auto done = [this, alive, id](l7::Http2Session*) {
      loop_.post([this, alive, id] {
        if (!alive.expired()) h2_.erase(id);
      });
    };
    h2_.emplace(id, std::make_unique<l7::Http2Session>(*http_, std::move(down), info, done, already_read));
  } else {
    auto done = [this, alive, id](l7::HttpSession*) {
      loop_.post([this, alive, id] {
        if (!alive.expired()) h1_.erase(id);
      });
    };
    h1_.emplace(id, std::make_unique<l7::HttpSession>(*http_, std::move(down), info, done, already_read));
  }
}

void NodeProxy::startSniff(std::unique_ptr<Transport> down, const l7::SessionInfo& info, ConnectTarget l4,
                           MetricsRegistry::Labels labels) {
  uint64_t id = next_id_++;
  auto sn = std::make_unique<Sniffing>(*this, id);
  sn->info = info;
  sn->l4 = std::move(l4);
  sn->labels = std::move(labels);
  sn->down = std::move(down);
  sn->down->setCallbacks(sn.get());
  std::weak_ptr<bool> alive = alive_;
  sn->timer = loop_.addTimer(kSniffTimeout, [this, alive, id] {
    if (!alive.expired()) sniffed(id, true);
  });
  sniffing_.emplace(id, std::move(sn));
}

void NodeProxy::sniffed(uint64_t id, bool timed_out) {
  auto it = sniffing_.find(id);
  if (it == sniffing_.end()) return;
  std::shared_ptr<Sniffing> sn(std::move(it->second));
  sniffing_.erase(it);
  if (!timed_out && sn->timer) loop_.cancelTimer(sn->timer);
  sn->down->setCallbacks(nullptr);
  std::unique_ptr<Transport> down = std::move(sn->down);
  // Its callbacks may still be on the stack: the holder goes from the loop.
  loop_.post([sn] {});
  if (sn->closed) {
    loop_.post([gone = std::shared_ptr<Transport>(std::move(down))] {});
    return;
  }
  Sniffed kind = sniffProtocol(sn->bytes);
  if (kind == Sniffed::kHttp1 || kind == Sniffed::kHttp2) {
    return startHttp(std::move(down), sn->info, kind == Sniffed::kHttp2, sn->bytes);
  }
  connectAndPump(std::move(down), sn->l4, "outbound", sn->labels, sn->bytes);
}

void NodeProxy::connectAndPump(std::unique_ptr<Transport> down, const ConnectTarget& target, const std::string& kind,
                               const MetricsRegistry::Labels& labels, std::string already_read) {
  ++connecting_;
  // The downstream waits, unread, until the upstream exists.
  down->pauseReading(true);
  auto held = std::make_shared<std::unique_ptr<Transport>>(std::move(down));
  std::weak_ptr<bool> alive = alive_;
  upstream_.connect(target, options_.connect_timeout,
                    [this, alive, held, kind, labels, target,
                     first = std::move(already_read)](Result<std::unique_ptr<Transport>> up) {
                      if (alive.expired()) return;
                      --connecting_;
                      if (!up.ok()) {
                        spdlog::info("{}: connect {}:{} failed: {}", kind, target.ip, target.port, up.error().message);
                        metrics_.add(kRefused, {{"listener", kind}, {"reason", "upstream_connect_failed"}}, 1);
                        (*held)->reset();
                        return;
                      }
                      metrics_.add(kOpened, labels, 1);
                      uint64_t id = next_id_++;
                      auto done = [this, alive, id, labels](const PumpStats& st) {
                        metrics_.add(kSent, labels, static_cast<double>(st.bytes_up));
                        metrics_.add(kReceived, labels, static_cast<double>(st.bytes_down));
                        auto l = labels;
                        l.emplace_back("reset", st.reset ? "true" : "false");
                        metrics_.add(kClosed, l, 1);
                        loop_.post([this, alive, id] {
                          if (!alive.expired()) pumps_.erase(id);
                        });
                      };
                      auto down_t = std::move(*held);
                      // What a protocol sniffer already took off the client goes first.
                      if (!first.empty()) (*up)->write(first);
                      down_t->pauseReading(false);
                      pumps_.emplace(id, std::make_unique<Pump>(std::move(down_t), std::move(*up), done));
                    });
}

json NodeProxy::statusJson() const {
  json j;
  j["node"] = options_.node;
  j["listeners"] = json::array();
  if (outbound_) j["listeners"].push_back({{"name", "outbound"}, {"port", outbound_->port()}});
  if (inbound_) j["listeners"].push_back({{"name", "inbound"}, {"port", inbound_->port()}});
  j["connections"] = {{"active", activeConnections()}, {"l4", pumps_.size()},       {"http1", h1_.size()},
                      {"http2", h2_.size()},           {"connecting", connecting_}, {"max", options_.max_connections}};
  auto snap = snapshot_;
  j["configVersion"] = snap ? snap->version : 0;
  j["services"] = json::array();
  if (snap) {
    for (const auto& s : snap->services) {
      json ports = json::array(), eps = json::array();
      for (const auto& p : s.ports) {
        ports.push_back({{"port", p.port}, {"targetPort", p.target_port}, {"appProtocol", p.app_protocol}});
      }
      for (const auto& e : s.endpoints) {
        eps.push_back(
            {{"ip", e.ip}, {"node", e.node}, {"mesh", e.mesh}, {"healthy", e.healthy}, {"identity", e.identity}});
      }
      j["services"].push_back({{"name", s.name}, {"vip", s.vip}, {"ports", ports}, {"endpoints", eps}});
    }
  }
  return j;
}

}  // namespace offcore::mesh
