// `offcore csi`: the CSI driver (csi/README.md). `--mode controller` serves
// Identity + Controller (volumes on a pool of storage hosts); `--mode node`
// serves Identity + Node for one offcore node (attach in its SoC, mount on
// the host). Both on a unix socket, as kubelet and the CSI sidecars expect.
#include <signal.h>

#include "base/log.h"
#include "cli/common.h"
#include "cli/csi_ops.h"
#include "csi/server.h"
#include "csi/service.h"
#include "dpu/node.h"

namespace offcore {

namespace {

struct CsiOpts {
  std::string mode, endpoint, node, log_level;
  std::vector<std::string> pools;
  int replicas = 1;
  int max_volumes = 0;
};

Result<std::map<std::string, std::vector<std::string>>> parsePools(const std::vector<std::string>& specs) {
  std::map<std::string, std::vector<std::string>> pools;
  for (const auto& s : specs) {
    auto eq = s.find('=');
    std::string name = eq == std::string::npos ? "default" : s.substr(0, eq);
    std::string hosts = eq == std::string::npos ? s : s.substr(eq + 1);
    std::vector<std::string> list;
    size_t at = 0;
    while (at <= hosts.size()) {
      size_t comma = hosts.find(',', at);
      std::string h = hosts.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
      if (!h.empty()) list.push_back(h);
      if (comma == std::string::npos) break;
      at = comma + 1;
    }
    if (name.empty() || list.empty()) return makeError("--pool '" + s + "': NAME=HOST[,HOST...] or HOST[,HOST...]");
    if (pools.count(name)) return makeError("--pool " + name + " given twice");
    pools[name] = list;
  }
  if (pools.empty()) return makeError("give the storage hosts: --pool [NAME=]HOST[,HOST...] (a `target serve` each)");
  return pools;
}

int runCsi(const CliContext& ctx, const CsiOpts& o) {
  if (!o.log_level.empty()) spdlog::set_level(spdlog::level::from_str(o.log_level));
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  ::pthread_sigmask(SIG_BLOCK, &mask, nullptr);
  std::vector<std::unique_ptr<grpc::Service>> services;
  std::unique_ptr<csi::ControllerOps> controller;
  std::unique_ptr<csi::NodeOps> node;
  csi::IdentityInfo id;
  id.version = "1.9.0";
  if (o.mode == "controller") {
    auto pools = parsePools(o.pools);
    if (!pools.ok()) return fail("csi", pools.error());
    if (!pools->count("default"))
      return fail("csi", makeError("one --pool must be the default (no NAME= or default=)"));
    if (o.replicas < 1 || o.replicas > 3) return fail("csi", makeError("--replicas takes 1 to 3"));
    controller = makeCsiController(ctx, {*pools, o.replicas});
    id.controller = true;
    services.push_back(csi::makeControllerService(*controller));
  } else {
    if (o.node.empty()) return fail("csi", makeError("--mode node needs --node NAME (the offcore node)"));
    auto nodes = NodeManager::create(ctx.config);
    if (!nodes.ok()) return fail("csi", nodes.error());
    if (auto st = nodes->state(o.node); !st.ok()) {
      return fail("csi", st.error().wrap("node " + o.node + " (start it with `offcore dpu up --name " + o.node + "`)"));
    }
    node = makeCsiNode(ctx, {o.node, o.max_volumes});
    std::string name = o.node;
    const Config& config = ctx.config;
    id.probe = [&config, name] {
      auto nodes = NodeManager::create(config);
      if (!nodes.ok()) return Status(nodes.error());
      auto st = nodes->state(name);
      if (!st.ok()) return Status(st.error());
      return okStatus();
    };
    services.push_back(csi::makeNodeService(*node));
  }
  services.insert(services.begin(), csi::makeIdentityService(id));
  auto server = csi::CsiServer::start(o.endpoint, std::move(services));
  if (!server.ok()) return fail("csi", server.error());
  std::printf("csi %s serving %s on unix://%s\n", o.mode.c_str(), csi::kDriverName, (*server)->path().c_str());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&mask, &sig);
  spdlog::info("signal {}: stopping", sig);
  (*server)->shutdown();
  return 0;
}

}  // namespace

void registerCsiCommand(CLI::App& app, CliContext& ctx) {
  auto o = std::make_shared<CsiOpts>();
  auto* cmd = app.add_subcommand("csi", "serve the CSI driver (controller or node) on a unix socket");
  cmd->add_option("--mode", o->mode, "controller: volumes and snapshots; node: stage and publish on one node")
      ->check(CLI::IsMember({"controller", "node"}))
      ->required();
  cmd->add_option("--endpoint", o->endpoint, "unix:///path/csi.sock (what kubelet and the sidecars dial)")->required();
  cmd->add_option("--node", o->node, "node mode: the offcore node whose SoC attaches the volumes");
  cmd->add_option("--pool", o->pools,
                  "controller mode: [NAME=]HOST,HOST,... storage hosts a storage class's `pool` parameter picks "
                  "(repeatable; no NAME is the default pool)");
  cmd->add_option("--replicas", o->replicas, "controller mode: replicas when a class does not say (1-3)")
      ->capture_default_str();
  cmd->add_option("--max-volumes", o->max_volumes, "node mode: volumes this node takes (0: no limit)")
      ->capture_default_str();
  cmd->add_option("--log-level", o->log_level, "trace, debug, info, warn, error");
  cmd->callback([&ctx, o] { ctx.action = [&ctx, o] { return runCsi(ctx, *o); }; });
}

}  // namespace offcore
