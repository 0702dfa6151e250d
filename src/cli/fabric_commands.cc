// `offcore fabric host ...`: plain namespaces on the fabric, standing for
// the machines around a node (a storage node, a registry, a client).
#include <cstdio>

#include "base/json.h"
#include "base/subprocess.h"
#include "cli/common.h"
#include "dpu/fabric.h"
#include "dpu/netns.h"
#include "dpu/node.h"

namespace offcore {

using nlohmann::json;

void registerFabricCommands(CLI::App& app, CliContext& ctx) {
  auto* fabric = app.add_subcommand("fabric", "the shared network between nodes and fabric hosts");
  fabric->require_subcommand(1);
  auto* host = fabric->add_subcommand("host", "fabric hosts: storage nodes, registries, clients");
  host->require_subcommand(1);

  struct Opts {
    std::string name, ip;
    bool json = false;
    std::vector<std::string> command;
  };
  auto a = std::make_shared<Opts>();
  auto* add = host->add_subcommand("add", "create a fabric host namespace");
  add->add_option("name", a->name, "host name (1-10 of a-z0-9-)")->required();
  add->add_option("--ip", a->ip, "its address, CIDR (default: next free in <prefix>.1.0/24)");
  add->add_flag("--json", a->json, "print the host as JSON");
  add->callback([&ctx, a] {
    ctx.action = [&ctx, a] {
      if (auto s = checkPrerequisites(); !s.ok()) return fail("fabric host add", s.error());
      Fabric f(ctx.config);
      auto lock = f.lock();
      if (!lock.ok()) return fail("fabric host add", lock.error());
      auto h = f.addHost(a->name, a->ip);
      if (!h.ok()) return fail("fabric host add", h.error());
      if (a->json) {
        std::printf("%s\n", dumpJson(json{{"name", h->name}, {"netns", h->netns}, {"ip", h->ip}}, 2).c_str());
      } else {
        std::printf("fabric host %s: netns %s, eth0 %s\n", h->name.c_str(), h->netns.c_str(), h->ip.c_str());
      }
      return 0;
    };
  });

  auto d = std::make_shared<Opts>();
  auto* del = host->add_subcommand("del", "remove a fabric host (idempotent)");
  del->add_option("name", d->name, "host name")->required();
  del->callback([&ctx, d] {
    ctx.action = [&ctx, d] {
      if (auto s = checkPrerequisites(); !s.ok()) return fail("fabric host del", s.error());
      Fabric f(ctx.config);
      auto lock = f.lock();
      if (!lock.ok()) return fail("fabric host del", lock.error());
      if (auto s = f.deleteHost(d->name); !s.ok()) return fail("fabric host del", s.error());
      (void)f.removeIfUnused();
      std::printf("fabric host %s removed\n", d->name.c_str());
      return 0;
    };
  });

  auto l = std::make_shared<Opts>();
  auto* list = host->add_subcommand("list", "fabric hosts");
  list->add_flag("--json", l->json, "machine-readable output");
  list->callback([&ctx, l] {
    ctx.action = [&ctx, l] {
      Fabric f(ctx.config);
      json arr = json::array();
      std::vector<std::vector<std::string>> rows{{"HOST", "NETNS", "IP"}};
      for (const auto& h : f.hosts()) {
        arr.push_back({{"name", h.name}, {"netns", h.netns}, {"ip", h.ip}});
        rows.push_back({h.name, h.netns, h.ip});
      }
      if (l->json)
        std::printf("%s\n", dumpJson(arr, 2).c_str());
      else
        std::printf("%s", renderTable(rows).c_str());
      return 0;
    };
  });

  auto e = std::make_shared<Opts>();
  auto* exec = fabric->add_subcommand("exec", "run a command in a fabric host's namespace");
  exec->add_option("name", e->name, "host name")->required();
  exec->add_option("command", e->command, "the command, after --")->required();
  exec->callback([&ctx, e] {
    ctx.action = [&ctx, e] {
      Fabric f(ctx.config);
      auto h = f.host(e->name);
      if (!h.ok()) return fail("fabric exec", h.error());
      SpawnOptions opts;
      std::string netns = h->netns;
      opts.in_child = [netns] { return enterNetns(netns); };
      Error err = execInPlace(e->command, opts);
      fail("fabric exec", err);
      return 127;
    };
  });
}

}  // namespace offcore
