// `offcore mesh worker`: one epoch of the node's mesh proxy, started by the
// node's mesh keeper (`offcore mesh serve`, mesh_keeper.cc) with the
// listening sockets it inherits.
#include "cli/mesh_node.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cstring>
#include <set>

#include "api/api_server.h"
#include "base/event_loop.h"
#include "base/files.h"
#include "base/json.h"
#include "dpu/layout.h"
#include "dpu/netns.h"
#include "dpu/node_state.h"
#include "mesh/hbone/connector.h"
#include "mesh/hbone/server.h"
#include "mesh/net/tcp_transport.h"
#include "mesh/proxy/cluster_source.h"
#include "mesh/proxy/interception.h"
#include "mesh/proxy/node_proxy.h"
#include "mesh/proxy/routing_connector.h"
#include "mesh/proxy/sandbox.h"
#include "mesh/proxy/xds_merge.h"
#include "mesh/tls/cert_manager.h"
#include "mesh/tls/keeper_issuer.h"
#include "mesh/xds/xds_client.h"
#include "net/dataplane.h"

namespace offcore {

using nlohmann::json;

namespace {

std::string stripPrefix(const std::string& cidr) { return cidr.substr(0, cidr.find('/')); }

// How long a stopping proxy lets its connections finish before resetting them.
constexpr std::chrono::milliseconds kDrainTimeout{30000};
constexpr size_t kAccessLogMax = 64u << 20;

}  // namespace

Result<MeshNodeSettings> readMeshSettings(const std::string& path) {
  OC_ASSIGN_OR_RETURN(auto text, readFile(path));
  auto j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return makeError(path + " is not a JSON object; run `offcore mesh up` again");
  MeshNodeSettings s;
  s.trust_domain = j.value("trustDomain", s.trust_domain);
  s.cert_ttl_s = j.value("certTtlSeconds", s.cert_ttl_s);
  s.xds_server = j.value("xdsServer", s.xds_server);
  s.rt_priority = j.value("rtPriority", s.rt_priority);
  if (s.rt_priority < 0 || s.rt_priority > 99) return makeError(path + ": rtPriority must be 0-99");
  return s;
}

Result<std::map<std::string, int>> parseInheritedFds(const std::string& text) {
  std::map<std::string, int> fds;
  std::vector<std::string> items;
  for (size_t at = 0; at <= text.size();) {
    size_t comma = text.find(',', at);
    if (comma == std::string::npos) comma = text.size();
    if (comma > at) items.push_back(text.substr(at, comma - at));
    at = comma + 1;
  }
  for (const auto& item : items) {
    auto eq = item.find('=');
    int fd = eq == std::string::npos ? -1 : std::atoi(item.c_str() + eq + 1);
    if (fd < 3) return makeError("--fds: expected NAME=FD,... (got '" + item + "')");
    fds[item.substr(0, eq)] = fd;
  }
  return fds;
}

int runMeshWorker(const CliContext& ctx, const std::string& node, int epoch, const std::string& fds_text) {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  ::pthread_sigmask(SIG_BLOCK, &mask, nullptr);

  NodeLayout l = NodeLayout::forNode(ctx.config, node);
  auto state = loadNodeState(l.state_file);
  if (!state.ok()) return fail("mesh worker", state.error());
  auto settings = readMeshSettings(l.mesh_file);
  if (!settings.ok()) return fail("mesh worker", settings.error());

  mesh::NodeProxyOptions opts;
  opts.node = node;
  opts.node_ip = stripPrefix(state->uplink_ip);
  auto inherited = parseInheritedFds(fds_text);
  if (!inherited.ok()) return fail("mesh worker", inherited.error());

  EventLoop loop;
  if (auto s = loop.init(); !s.ok()) return fail("mesh worker", s.error());
  // Before any thread starts, so every thread of the epoch inherits it. The
  // kernel's RT throttling still leaves the SoC's other tasks 5% of a cpu
  // should the proxy spin.
  if (settings->rt_priority > 0) {
    sched_param sp{};
    sp.sched_priority = settings->rt_priority;
    if (::sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, &sp) != 0) {
      spdlog::warn("mesh worker: SCHED_FIFO priority {}: {}; running on the normal scheduler", settings->rt_priority,
                   std::strerror(errno));
    }
  }
  // The sandbox (mesh/proxy/sandbox.h): from here on the CA directory is an
  // empty tmpfs, the mesh CA's etcd password file /dev/null, the file system read-only but for the run directory, and
  // the capabilities those of a proxy.
  auto ca_fd = inherited->find("ca");
  if (ca_fd == inherited->end()) {
    return fail("mesh worker",
                makeError("no CA channel in --fds (ca=N); the worker is started by `offcore mesh serve`"));
  }
  mesh::SandboxOptions sandbox;
  sandbox.ca_dir = ctx.config.cluster_dir + "/mesh/ca";
  sandbox.hidden_files = {ctx.config.mesh_ca_etcd_password_file};
  sandbox.writable = {l.run_dir};
  sandbox.keep_caps = mesh::workerCapabilities(settings->rt_priority > 0);
  if (auto s = mesh::enterSandbox(sandbox); !s.ok()) return fail("mesh worker", s.error());
  // Identities: the keeper's CA signs this node's pods' certificates
  // (short-lived, rotated at half life); their keys are made here.
  auto issuer = mesh::tls::KeeperIssuer::connect(ca_fd->second);
  if (!issuer.ok()) return fail("mesh worker", issuer.error());
  if ((*issuer)->trustDomain() != settings->trust_domain) {
    return fail("mesh worker", makeError("the keeper's CA is for trust domain " + (*issuer)->trustDomain() + ", not " +
                                         settings->trust_domain + "; restart the mesh service (`offcore mesh up`)"));
  }
  mesh::tls::CertManager::Options co;
  co.ttl = mesh::tls::Seconds(settings->cert_ttl_s);
  mesh::tls::CertManager certs(loop, **issuer, co);
  if (auto s = certs.init(); !s.ok()) return fail("mesh worker", s.error());
  mesh::TcpConnector tcp(loop);
  mesh::hbone::HboneConnector hbone(loop, certs, {opts.ports.hbone, opts.node_ip, {}});
  mesh::RoutingConnector upstream(tcp, hbone);
  mesh::NodeProxy proxy(loop, opts, upstream);
  if (auto s = proxy.start(*inherited); !s.ok()) return fail("mesh worker", s.error());
  mesh::hbone::HboneServer::Options ho;
  ho.ip = opts.node_ip;
  ho.port = opts.ports.hbone;
  if (auto it = inherited->find("hbone"); it != inherited->end()) ho.listen_fd = it->second;
  mesh::hbone::HboneServer tunnels(
      loop, certs, ho, [&](mesh::hbone::TunnelRequest r, std::unique_ptr<mesh::Transport> t) {
        mesh::TunnelRequest req{r.target_ip, r.target_port, r.source_ip, r.peer_identity, r.local_identity};
        return proxy.acceptTunnel(req, t);
      });
  if (auto s = tunnels.start(); !s.ok()) return fail("mesh worker", s.error());
  std::set<std::string> held_identities;

  auto store = mesh::openMeshStore(ctx.config);
  if (!store.ok()) return fail("mesh worker", store.error());
  mesh::ClusterSnapshotSource source(loop, std::move(*store), node, settings->trust_domain);
  // With an xDS server, Services, endpoints and routes come from it; the
  // cluster state still says who each pod is (xds_merge.h).
  std::shared_ptr<const mesh::Snapshot> from_cluster, from_xds;
  std::unique_ptr<mesh::xds::XdsClient> xds;
  auto publish = [&] {
    if (!from_cluster) return;
    if (settings->xds_server.empty()) return proxy.setSnapshot(from_cluster);
    if (!from_xds) return;  // no routes until the control plane has spoken
    proxy.setSnapshot(std::make_shared<mesh::Snapshot>(mesh::mergeXdsSnapshot(*from_xds, *from_cluster)));
  };
  auto on_snapshot = [&](std::shared_ptr<const mesh::Snapshot> snap) {
    auto routes =
        mesh::podRouteTargets(snap->workloads, node, [](uint32_t vni) { return linkExists("", meshReturnLink(vni)); });
    if (auto s = mesh::syncPodRoutes(routes); !s.ok()) spdlog::warn("pod routes: {}", s.error().message);
    std::set<std::string> routed_remote;
    for (const auto& w : snap->workloads) {
      if (w.node != node && routes.count(w.ip)) routed_remote.insert(w.ip);
    }
    proxy.setRoutedRemotePods(std::move(routed_remote));
    // Certificates for the identities of this node's mesh pods, no others.
    std::set<std::string> want;
    for (const auto& w : snap->workloads) {
      if (w.node == node && w.mesh) want.insert(w.identity);
    }
    for (const auto& id : want) {
      if (held_identities.count(id)) continue;
      if (auto s = certs.add(id); !s.ok()) {
        spdlog::error("certificate for {}: {}", id, s.error().message);
        continue;
      }
      held_identities.insert(id);
    }
    for (auto it = held_identities.begin(); it != held_identities.end();) {
      if (want.count(*it)) {
        ++it;
        continue;
      }
      certs.remove(*it);
      it = held_identities.erase(it);
    }
    spdlog::info("cluster config version {}: {} services, {} pods", snap->version, snap->services.size(),
                 snap->workloads.size());
    from_cluster = std::move(snap);
    publish();
  };
  if (auto s = source.start(on_snapshot); !s.ok()) return fail("mesh worker", s.error());
  if (!settings->xds_server.empty()) {
    mesh::xds::XdsClientOptions xo;
    xo.server = settings->xds_server;
    xo.node_id = "offcore~" + opts.node_ip + "~" + node;
    xo.node_cluster = node;
    xo.trust_domain = settings->trust_domain;
    xds = std::make_unique<mesh::xds::XdsClient>(xo, [&loop, &from_xds, &publish](mesh::xds::XdsUpdate u) {
      // On the xDS thread: hand the snapshot to the proxy's loop.
      auto snap = std::make_shared<mesh::Snapshot>(std::move(u.snapshot));
      loop.post([&from_xds, &publish, snap] {
        spdlog::info("xDS config version {}: {} services", snap->version, snap->services.size());
        from_xds = snap;
        publish();
      });
    });
    if (auto s = xds->start(); !s.ok()) return fail("mesh worker", s.error());
  }

  ApiServer api(loop);
  api.route("GET", "/v1/mesh/status", [&](const ApiRequest&) {
    auto j = proxy.statusJson();
    j["epoch"] = epoch;
    j["trustDomain"] = settings->trust_domain;
    if (xds) {
      auto st = xds->stats();
      j["configSource"] = {{"xds", settings->xds_server}, {"connected", st.connected},
                           {"updates", st.updates},       {"acks", st.acks},
                           {"nacks", st.nacks},           {"lastNack", st.last_nack}};
    } else {
      j["configSource"] = {
          {"cluster", ctx.config.cluster_store.empty() ? ctx.config.cluster_dir : ctx.config.cluster_store}};
    }
    j["listeners"].push_back({{"name", "hbone"}, {"port", tunnels.port()}, {"address", opts.node_ip}});
    j["hbone"] = {{"connections", tunnels.connectionCount()}, {"refused", tunnels.refusedConnections()}};
    json certs_j = json::array();
    for (const auto& c : certs.status()) {
      auto secs = [](auto tp) {
        return std::chrono::duration_cast<std::chrono::seconds>(tp.time_since_epoch()).count();
      };
      certs_j.push_back({{"identity", c.identity},
                         {"serial", c.serial},
                         {"notBefore", secs(c.not_before)},
                         {"notAfter", secs(c.not_after)},
                         {"nextRotation", secs(c.next_rotation)},
                         {"rotations", c.rotations}});
    }
    j["certificates"] = certs_j;
    j["pid"] = ::getpid();
    return ApiResponse::json(200, dumpJson(j) + "\n");
  });
  api.route("GET", "/metrics", [&](const ApiRequest&) { return ApiResponse::text(200, proxy.metrics().renderText()); });
  if (auto s = api.listenUnix(l.run_dir + "/mesh.sock"); !s.ok()) return fail("mesh worker", s.error());
  // The same metrics on the SoC-local port, for a Prometheus in the SoC.
  ApiServer metrics_api(loop);
  metrics_api.route("GET", "/metrics",
                    [&](const ApiRequest&) { return ApiResponse::text(200, proxy.metrics().renderText()); });
  if (auto it = inherited->find("metrics"); it != inherited->end()) {
    if (auto s = metrics_api.listenFd(it->second); !s.ok()) return fail("mesh worker", s.error());
  }
  // Access log: one JSON line per L7 request, 0600, next to the service
  // log; at kAccessLogMax it moves to .1 (one old file kept), so a flood of
  // requests cannot fill the SoC's disk. Lines gather in memory and go out
  // every second (Envoy's default flush interval) or at 64 KiB, in one
  // write of whole lines: a reader (jq, a log shipper) never sees half a
  // line, and the proxy does not pay a write per request.
  const std::string access_path = l.run_dir + "/mesh-access.log";
  int access_fd = -1;
  size_t access_bytes = 0;
  std::string access_buf;
  auto open_access = [&] {
    access_fd = ::open(access_path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (access_fd < 0) return;
    ::fchmod(access_fd, 0600);
    struct stat st {};
    access_bytes = ::fstat(access_fd, &st) == 0 ? static_cast<size_t>(st.st_size) : 0;
  };
  auto flush_access_buf = [&] {
    if (access_fd < 0 || access_buf.empty()) return;
    // A short write (disk full) loses the rest of this batch, never the proxy.
    ssize_t n = ::write(access_fd, access_buf.data(), access_buf.size());
    access_bytes += n > 0 ? static_cast<size_t>(n) : 0;
    access_buf.clear();
    if (access_bytes >= kAccessLogMax) {
      ::close(access_fd);
      std::rename(access_path.c_str(), (access_path + ".1").c_str());
      open_access();
    }
  };
  open_access();
  proxy.setAccessLog([&](const mesh::l7::RequestRecord& r) {
    if (access_fd < 0) return;
    access_buf += mesh::l7::accessLogJson(r);
    access_buf += '\n';
    if (access_buf.size() >= (64 << 10)) flush_access_buf();
  });
  std::function<void()> flush_access = [&] {
    flush_access_buf();
    loop.addTimer(std::chrono::seconds(1), flush_access);
  };
  loop.addTimer(std::chrono::seconds(1), flush_access);

  int sfd = ::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) return fail("mesh worker", errnoError("signalfd"));
  bool draining = false;
  auto deadline = std::chrono::steady_clock::now();
  std::function<void()> check_drained = [&] {
    if (proxy.activeConnections() == 0 || std::chrono::steady_clock::now() >= deadline) {
      proxy.abortAll();
      loop.stop();
      return;
    }
    loop.addTimer(std::chrono::milliseconds(50), check_drained);
  };
  (void)loop.watchFd(sfd, EPOLLIN, [&](uint32_t) {
    signalfd_siginfo info;
    while (::read(sfd, &info, sizeof info) == sizeof info) {
      if (draining) continue;
      draining = true;
      spdlog::info("signal {}: draining {} connections", info.ssi_signo, proxy.activeConnections());
      proxy.stopAccepting();
      tunnels.stopAccepting();
      deadline = std::chrono::steady_clock::now() + kDrainTimeout;
      check_drained();
    }
  });
  // Its own unix sockets exist now (mesh.sock): no new ones from here on.
  if (auto s = mesh::lockUnixSockets(); !s.ok()) return fail("mesh worker", s.error());
  std::printf("mesh proxy of node %s, epoch %d (pid %d): outbound :%u, inbound :%u\n", node.c_str(), epoch,
              static_cast<int>(::getpid()), opts.ports.outbound, opts.ports.inbound);
  std::fflush(stdout);
  auto ran = loop.run();
  if (xds) xds->stop();  // no callback may post into a loop that is going away
  flush_access_buf();
  if (access_fd >= 0) ::close(access_fd);
  ::close(sfd);
  if (!ran.ok()) return fail("mesh worker", ran.error());
  return 0;
}

}  // namespace offcore
