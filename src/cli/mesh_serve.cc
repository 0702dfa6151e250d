// `offcore mesh serve --node N`: the node's mesh proxy, run by the agent as
// the supervised service "mesh" in the SoC domain (`offcore mesh up`).
#include "cli/mesh_node.h"

#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "api/api_server.h"
#include "base/event_loop.h"
#include "base/files.h"
#include "base/json.h"
#include "dpu/layout.h"
#include "dpu/node_state.h"
#include "mesh/net/tcp_transport.h"
#include "mesh/proxy/cluster_source.h"
#include "mesh/proxy/interception.h"
#include "mesh/proxy/node_proxy.h"

namespace offcore {

using nlohmann::json;

namespace {

std::string stripPrefix(const std::string& cidr) { return cidr.substr(0, cidr.find('/')); }

// How long a stopping proxy lets its connections finish before resetting them.
constexpr std::chrono::milliseconds kDrainTimeout{10000};

}  // namespace

Result<MeshNodeSettings> readMeshSettings(const std::string& path) {
  OC_ASSIGN_OR_RETURN(auto text, readFile(path));
  auto j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return makeError(path + " is not a JSON object; run `offcore mesh up` again");
  MeshNodeSettings s;
  s.trust_domain = j.value("trustDomain", s.trust_domain);
  return s;
}

int serveMesh(const CliContext& ctx, const std::string& node) {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  ::pthread_sigmask(SIG_BLOCK, &mask, nullptr);

  NodeLayout l = NodeLayout::forNode(ctx.config, node);
  auto state = loadNodeState(l.state_file);
  if (!state.ok()) return fail("mesh serve", state.error());
  auto settings = readMeshSettings(l.mesh_file);
  if (!settings.ok()) return fail("mesh serve", settings.error());

  mesh::NodeProxyOptions opts;
  opts.node = node;
  opts.node_ip = stripPrefix(state->uplink_ip);
  if (auto s = mesh::installInterception("", opts.ports, l.uplink_soc_if); !s.ok()) {
    return fail("mesh serve", s.error().wrap("interception"));
  }

  EventLoop loop;
  if (auto s = loop.init(); !s.ok()) return fail("mesh serve", s.error());
  mesh::TcpConnector tcp(loop);
  mesh::NodeProxy proxy(loop, opts, tcp);
  if (auto s = proxy.start(); !s.ok()) return fail("mesh serve", s.error());

  mesh::ClusterSnapshotSource source(loop, ctx.config.cluster_dir, node, settings->trust_domain);
  auto on_snapshot = [&](std::shared_ptr<const mesh::Snapshot> snap) {
    std::map<std::string, std::string> routes;
    for (const auto& w : snap->workloads) {
      if (w.node == node && !w.representor.empty()) routes[w.ip] = w.representor;
    }
    if (auto s = mesh::syncPodRoutes(routes); !s.ok()) spdlog::warn("pod routes: {}", s.error().message);
    spdlog::info("config version {}: {} services, {} pods", snap->version, snap->services.size(),
                 snap->workloads.size());
    proxy.setSnapshot(std::move(snap));
  };
  if (auto s = source.start(on_snapshot); !s.ok()) return fail("mesh serve", s.error());

  ApiServer api(loop);
  api.route("GET", "/v1/mesh/status", [&](const ApiRequest&) {
    return ApiResponse::json(200, dumpJson(proxy.statusJson()) + "\n");
  });
  api.route("GET", "/metrics", [&](const ApiRequest&) { return ApiResponse::text(200, proxy.metrics().renderText()); });
  if (auto s = api.listenUnix(l.run_dir + "/mesh.sock"); !s.ok()) return fail("mesh serve", s.error());

  int sfd = ::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) return fail("mesh serve", errnoError("signalfd"));
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
      deadline = std::chrono::steady_clock::now() + kDrainTimeout;
      check_drained();
    }
  });
  std::printf("mesh proxy of node %s: outbound :%u, inbound :%u\n", node.c_str(), opts.ports.outbound,
              opts.ports.inbound);
  std::fflush(stdout);
  auto ran = loop.run();
  ::close(sfd);
  if (!ran.ok()) return fail("mesh serve", ran.error());
  return 0;
}

}  // namespace offcore
