// `offcore dpu ...`: node lifecycle, status, exec, VFs and services.
#include <cstdio>
#include <map>

#include <curl/curl.h>

#include "api/api_client.h"
#include "base/json.h"
#include "base/subprocess.h"
#include "cli/common.h"
#include "dpu/node.h"
#include "image/image_service_client.h"
#include "svc/cluster_store.h"

namespace offcore {

using nlohmann::json;

namespace {

// A VM is the agent services vm-NAME-qemu (host domain: the vCPUs) and
// vm-NAME-<device> (SoC: the back ends); one line per VM with both sums.
void printVmSplit(const json& services) {
  std::map<std::string, std::pair<double, double>> vms;  // name -> host, soc seconds
  for (const auto& sv : services) {
    std::string name = sv.value("name", "");
    size_t dash = name.rfind('-');
    if (name.rfind("vm-", 0) != 0 || dash == std::string::npos || dash <= 3) continue;
    auto& [host, soc] = vms[name.substr(3, dash - 3)];
    std::string domain = sv.value("domain", "");
    (domain == "soc" ? soc : host) += sv.value("cpu_seconds", 0.0);
  }
  for (const auto& [vm, cpu] : vms) {
    std::printf("vm %s: host domain %.2f cpu-s (QEMU vCPUs), SoC %.2f cpu-s (device back ends)\n", vm.c_str(),
                cpu.first, cpu.second);
  }
}

void printStatus(const json& s) {
  std::printf("node %s  phase %s  agent %s (pid %d)  cgroup %s\n", s["name"].get<std::string>().c_str(),
              s.value("phase", "").c_str(), s["agent"].value("state", "").c_str(), s["agent"].value("pid", 0),
              s.value("cgroup_version", "").c_str());
  std::vector<std::vector<std::string>> rows{{"DOMAIN", "CPUS", "CPU-SECONDS", "MEMORY", "PIDS", "NETNS"}};
  for (const char* d : {"soc", "host"}) {
    const auto& dom = s["domains"][d];
    char cpu[32];
    std::snprintf(cpu, sizeof cpu, "%.2f", dom.value("cpu_seconds", 0.0));
    rows.push_back({d, dom.value("cpus", ""), cpu, humanBytes(dom.value("memory_bytes", 0ULL)),
                    std::to_string(dom.value("pids", 0)), dom.value("netns", "")});
  }
  std::printf("%s", renderTable(rows).c_str());
  const auto& infra = s["infra"];
  std::printf("infrastructure cpu: soc %.2fs, host %.2fs -> host share %.1f%%\n", infra.value("soc_cpu_seconds", 0.0),
              infra.value("host_cpu_seconds", 0.0), 100.0 * infra.value("host_share", 0.0));
  const auto& hv = s["network"]["host_vf"];
  std::printf("uplink %s  host-VF %s -> %s (%s)\n", s["network"]["uplink"].value("ip", "").c_str(),
              hv.value("host_ip", "").c_str(), hv.value("soc_ip", "").c_str(), hv.value("mode", "").c_str());
  bool watched = s["watchdog"].value("state", "") == "running";
  if (s["agent"].value("state", "") == "unreachable") {
    std::printf("the agent does not answer%s; start a new one with `offcore dpu agent restart --name %s`\n",
                watched ? " (its watchdog replaces a dead one within a second)" : "",
                s["name"].get<std::string>().c_str());
  }
  if (!watched) {
    std::printf(
        "the agent's watchdog is gone: a crashed agent stays down; `offcore dpu agent restart --name %s` "
        "starts both\n",
        s["name"].get<std::string>().c_str());
  }
  if (!s["services"].empty()) {
    // DOMAIN is where the process's CPU is charged: a VM's QEMU runs in the
    // host domain, its device back ends in the SoC.
    std::vector<std::vector<std::string>> srows{{"SERVICE", "STATE", "RESTARTS", "PID", "DOMAIN", "CPU-SECONDS"}};
    for (const auto& sv : s["services"]) {
      char cpu[32];
      std::snprintf(cpu, sizeof cpu, "%.2f", sv.value("cpu_seconds", 0.0));
      srows.push_back({sv.value("name", ""), sv.value("state", ""), std::to_string(sv.value("restarts", 0)),
                       std::to_string(sv.value("pid", 0)), sv.value("domain", ""), cpu});
    }
    std::printf("%s", renderTable(srows).c_str());
    printVmSplit(s["services"]);
  }
  if (!s["vfs"].empty()) {
    std::vector<std::vector<std::string>> vrows{{"REPRESENTOR", "NETNS", "IFNAME", "IP", "MAC"}};
    for (const auto& v : s["vfs"]) {
      vrows.push_back({v.value("representor", ""), v.value("netns", ""), v.value("ifname", ""), v.value("ip", ""),
                       v.value("mac", "")});
    }
    std::printf("%s", renderTable(vrows).c_str());
  }
}

// Runs fn with a NodeManager, turning setup errors into exit code 1.
int withNodes(CliContext& ctx, const std::string& what, const std::function<int(NodeManager&)>& fn) {
  auto nodes = NodeManager::create(ctx.config);
  if (!nodes.ok()) return fail(what, nodes.error());
  return fn(*nodes);
}

Result<ApiClient> agentFor(NodeManager& nodes, const std::string& name) {
  OC_ASSIGN_OR_RETURN(NodeState st, nodes.state(name));
  return ApiClient(nodes.layout(st.name).api_socket, 10000);
}

void registerUpDown(CLI::App* dpu, CliContext& ctx) {
  auto spec = std::make_shared<NodeSpec>();
  auto as_json = std::make_shared<bool>(false);
  auto* up = dpu->add_subcommand("up", "create a node's SoC and host domains and start its agent");
  up->add_option("--name", spec->name, "node name (1-10 of a-z0-9-)")->required();
  up->add_option("--soc-cpus", spec->soc_cpus, "SoC cpus, e.g. 1 or 2-3 (default: the last cpu)");
  up->add_option("--host-cpus", spec->host_cpus, "host cpus (default: the others)");
  up->add_option("--mem", spec->soc_memory, "SoC memory limit, e.g. 512M");
  up->add_option("--host-netns", spec->host_netns, "host namespace (default: root); created if missing");
  up->add_flag("--json", *as_json, "print the node state as JSON");
  up->callback([&ctx, spec, as_json] {
    ctx.action = [&ctx, spec, as_json] {
      return withNodes(ctx, "dpu up", [&](NodeManager& nodes) {
        auto st = nodes.up(*spec);
        if (!st.ok()) return fail("dpu up", st.error());
        if (*as_json) {
          std::printf("%s", st->toJson().c_str());
        } else {
          std::printf("node %s up: soc cpus %s, host cpus %s, uplink %s, agent pid %d\n", st->name.c_str(),
                      formatCpuList(st->soc_cpus).c_str(), formatCpuList(st->host_cpus).c_str(), st->uplink_ip.c_str(),
                      st->agent_pid);
        }
        return 0;
      });
    };
  });

  auto name = std::make_shared<std::string>();
  auto* down = dpu->add_subcommand("down", "remove everything a node created (idempotent)");
  down->add_option("--name", *name, "node name")->required();
  down->callback([&ctx, name] {
    ctx.action = [&ctx, name] {
      return withNodes(ctx, "dpu down", [&](NodeManager& nodes) {
        // The node leaves the cluster first, so its EIPs and probes move to
        // live nodes at once; again after, in case its dying agent wrote.
        auto store = svc::ClusterStore::open(ctx.config);
        Status left = store.ok() ? store->unregisterNode(*name) : Status(store.error());
        auto s = nodes.down(*name);
        if (left.ok()) left = store->unregisterNode(*name);
        if (!s.ok()) return fail("dpu down", s.error());
        if (!left.ok())
          return fail("dpu down", left.error().wrap("node " + *name + " is down but still in the cluster state"));
        std::printf("node %s down\n", name->c_str());
        return 0;
      });
    };
  });
}

void registerAgent(CLI::App* dpu, CliContext& ctx) {
  auto* agent = dpu->add_subcommand("agent", "the node's SoC agent");
  agent->require_subcommand(1);
  auto name = std::make_shared<std::string>();
  auto as_json = std::make_shared<bool>(false);
  auto* restart = agent->add_subcommand(
      "restart", "replace the agent (hung, crashed or upgraded); services, VFs and forwarding carry on");
  restart->add_option("--name", *name, "node name")->required();
  restart->add_flag("--json", *as_json, "print the node state as JSON");
  restart->callback([&ctx, name, as_json] {
    ctx.action = [&ctx, name, as_json] {
      return withNodes(ctx, "dpu agent restart", [&](NodeManager& nodes) {
        auto before = nodes.state(*name);
        auto st = nodes.restartAgent(*name);
        if (!st.ok()) return fail("dpu agent restart", st.error());
        if (*as_json) {
          std::printf("%s", st->toJson().c_str());
        } else {
          std::printf("node %s: agent restarted, pid %d -> %d\n", name->c_str(), before.ok() ? before->agent_pid : 0,
                      st->agent_pid);
        }
        return 0;
      });
    };
  });
}

void registerStatus(CLI::App* dpu, CliContext& ctx) {
  auto name = std::make_shared<std::string>();
  auto as_json = std::make_shared<bool>(false);
  auto* status = dpu->add_subcommand("status", "domains, cpu and memory accounting, services and VFs");
  status->add_option("--name", *name, "node name (default: every node)");
  status->add_flag("--json", *as_json, "machine-readable output");
  status->callback([&ctx, name, as_json] {
    ctx.action = [&ctx, name, as_json] {
      return withNodes(ctx, "dpu status", [&](NodeManager& nodes) {
        std::vector<std::string> names = name->empty() ? nodes.list() : std::vector<std::string>{*name};
        json all = json::array();
        for (const auto& n : names) {
          auto st = fetchNodeStatus(nodes, n);
          if (!st.ok()) return fail("dpu status", st.error());
          all.push_back(*st);
        }
        if (*as_json) {
          std::printf("%s\n", dumpJson(name->empty() ? all : all[0], 2).c_str());
        } else if (all.empty()) {
          std::printf("no nodes (start one with `offcore dpu up --name NAME`)\n");
        } else {
          for (const auto& s : all) printStatus(s);
        }
        return 0;
      });
    };
  });

  auto list_json = std::make_shared<bool>(false);
  auto* list = dpu->add_subcommand("list", "the nodes on this machine");
  list->add_flag("--json", *list_json, "machine-readable output");
  list->callback([&ctx, list_json] {
    ctx.action = [&ctx, list_json] {
      return withNodes(ctx, "dpu list", [&](NodeManager& nodes) {
        json arr = json::array();
        std::vector<std::vector<std::string>> rows{{"NODE", "PHASE", "SOC-CPUS", "HOST-CPUS", "UPLINK"}};
        for (const auto& n : nodes.list()) {
          auto st = nodes.state(n);
          if (!st.ok()) continue;
          arr.push_back(json::parse(st->toJson()));
          rows.push_back({n, st->phase, formatCpuList(st->soc_cpus), formatCpuList(st->host_cpus), st->uplink_ip});
        }
        if (*list_json)
          std::printf("%s\n", dumpJson(arr, 2).c_str());
        else
          std::printf("%s", renderTable(rows).c_str());
        return 0;
      });
    };
  });
}

void registerExecTop(CLI::App* dpu, CliContext& ctx) {
  struct ExecOpts {
    std::string name, domain;
    std::vector<std::string> command;
  };
  auto o = std::make_shared<ExecOpts>();
  auto* exec = dpu->add_subcommand("exec", "run a command inside a node's soc or host domain");
  exec->add_option("--name", o->name, "node name")->required();
  exec->add_option("--domain", o->domain, "soc or host")->required();
  exec->add_option("command", o->command, "the command, after --")->required();
  exec->callback([&ctx, o] {
    ctx.action = [&ctx, o] {
      return withNodes(ctx, "dpu exec", [&](NodeManager& nodes) {
        auto domain = parseDomain(o->domain);
        if (!domain.ok()) return fail("dpu exec", domain.error());
        auto st = nodes.state(o->name);
        if (!st.ok()) return fail("dpu exec", st.error());
        SpawnOptions opts;
        NodeState node = *st;
        opts.in_child = [&] { return nodes.enterDomain(node, *domain); };
        Error e = execInPlace(o->command, opts);  // returns only on failure
        fail("dpu exec", e);
        return 127;
      });
    };
  });

  struct TopOpts {
    std::string name;
    double interval = 1.0;
    int iterations = 0;
  };
  auto t = std::make_shared<TopOpts>();
  auto* top = dpu->add_subcommand("top", "live per-domain cpu and memory (q or Ctrl-C quits)");
  top->add_option("--name", t->name, "node name (default: every node)");
  top->add_option("--interval", t->interval, "seconds between refreshes")->check(CLI::Range(0.1, 60.0));
  top->add_option("--iterations", t->iterations, "stop after N refreshes (default: run until q)");
  top->callback([&ctx, t] {
    ctx.action = [&ctx, t] {
      return withNodes(ctx, "dpu top", [&](NodeManager& nodes) {
        std::vector<std::string> names = t->name.empty() ? nodes.list() : std::vector<std::string>{t->name};
        return runTop(nodes, names, t->interval, t->iterations);
      });
    };
  });
}

void registerVf(CLI::App* dpu, CliContext& ctx) {
  auto* vf = dpu->add_subcommand("vf", "virtual functions: a veth per VF, representor in the SoC");
  vf->require_subcommand(1);

  struct VfOpts {
    std::string name, netns, ifname = "eth0", ip, mac, representor;
    bool json = false;
  };
  auto o = std::make_shared<VfOpts>();
  auto* add = vf->add_subcommand("add", "give a pod namespace a VF");
  add->add_option("--name", o->name, "node name")->required();
  add->add_option("--netns", o->netns, "the pod's namespace (name or /proc/PID/ns/net)")->required();
  add->add_option("--ifname", o->ifname, "interface name in the pod")->capture_default_str();
  add->add_option("--ip", o->ip, "address for the VF, CIDR");
  add->add_option("--mac", o->mac, "MAC for the VF (default: derived)");
  add->add_flag("--json", o->json, "print the VF as JSON");
  add->callback([&ctx, o] {
    ctx.action = [&ctx, o] {
      return withNodes(ctx, "dpu vf add", [&](NodeManager& nodes) {
        auto client = agentFor(nodes, o->name);
        if (!client.ok()) return fail("dpu vf add", client.error());
        json body{{"netns", o->netns}, {"ifname", o->ifname}, {"ip", o->ip}, {"mac", o->mac}};
        auto reply = client->call("POST", "/v1/vfs", dumpJson(body));
        if (!reply.ok()) return fail("dpu vf add", reply.error());
        auto vfj = json::parse(*reply);
        if (o->json)
          std::printf("%s\n", dumpJson(vfj, 2).c_str());
        else
          std::printf("VF %s in %s, representor %s in the SoC\n", vfj.value("ifname", "").c_str(),
                      vfj.value("netns", "").c_str(), vfj.value("representor", "").c_str());
        return 0;
      });
    };
  });

  auto d = std::make_shared<VfOpts>();
  auto* del = vf->add_subcommand("del", "remove a VF (by --representor, or --netns and --ifname)");
  del->add_option("--name", d->name, "node name")->required();
  del->add_option("--representor", d->representor, "representor name, e.g. pf0vf0");
  del->add_option("--netns", d->netns, "the pod's namespace");
  del->add_option("--ifname", d->ifname, "interface name in the pod")->capture_default_str();
  del->callback([&ctx, d] {
    ctx.action = [&ctx, d] {
      return withNodes(ctx, "dpu vf del", [&](NodeManager& nodes) {
        if (d->representor.empty() && d->netns.empty()) {
          return fail("dpu vf del", makeError("name the VF with --representor, or with --netns [--ifname]"));
        }
        auto client = agentFor(nodes, d->name);
        if (!client.ok()) return fail("dpu vf del", client.error());
        std::string id = d->representor.empty() ? d->netns + "/" + d->ifname : d->representor;
        char* escaped = curl_easy_escape(nullptr, id.c_str(), static_cast<int>(id.size()));
        std::string path = "/v1/vfs/" + std::string(escaped);
        curl_free(escaped);
        auto reply = client->call("DELETE", path);
        if (!reply.ok()) return fail("dpu vf del", reply.error());
        std::printf("VF %s removed\n", id.c_str());
        return 0;
      });
    };
  });

  auto l = std::make_shared<VfOpts>();
  auto* list = vf->add_subcommand("list", "the node's VFs");
  list->add_option("--name", l->name, "node name")->required();
  list->add_flag("--json", l->json, "machine-readable output");
  list->callback([&ctx, l] {
    ctx.action = [&ctx, l] {
      return withNodes(ctx, "dpu vf list", [&](NodeManager& nodes) {
        auto client = agentFor(nodes, l->name);
        if (!client.ok()) return fail("dpu vf list", client.error());
        auto reply = client->call("GET", "/v1/vfs");
        if (!reply.ok()) return fail("dpu vf list", reply.error());
        auto arr = json::parse(*reply);
        if (l->json) {
          std::printf("%s\n", dumpJson(arr, 2).c_str());
          return 0;
        }
        std::vector<std::vector<std::string>> rows{{"REPRESENTOR", "NETNS", "IFNAME", "IP", "MAC"}};
        for (const auto& v : arr) {
          rows.push_back({v.value("representor", ""), v.value("netns", ""), v.value("ifname", ""), v.value("ip", ""),
                          v.value("mac", "")});
        }
        std::printf("%s", renderTable(rows).c_str());
        return 0;
      });
    };
  });
}

void registerServices(CLI::App* dpu, CliContext& ctx) {
  auto* svc = dpu->add_subcommand("service", "services the agent supervises in the SoC domain");
  svc->require_subcommand(1);
  struct SvcOpts {
    std::string name, service;
    std::vector<std::string> command;
    bool no_restart = false, json = false, force = false;
  };
  auto a = std::make_shared<SvcOpts>();
  auto* add = svc->add_subcommand("add", "run a command as a supervised SoC service");
  add->add_option("--name", a->name, "node name")->required();
  add->add_option("--service", a->service, "service name")->required();
  add->add_flag("--no-restart", a->no_restart, "do not restart after a clean exit");
  add->add_option("command", a->command, "the command, after --")->required();
  add->callback([&ctx, a] {
    ctx.action = [&ctx, a] {
      return withNodes(ctx, "dpu service add", [&](NodeManager& nodes) {
        auto client = agentFor(nodes, a->name);
        if (!client.ok()) return fail("dpu service add", client.error());
        json body{{"name", a->service}, {"argv", a->command}, {"restart", !a->no_restart}};
        auto reply = client->call("POST", "/v1/services", dumpJson(body));
        if (!reply.ok()) return fail("dpu service add", reply.error());
        std::printf("service %s running in node %s's SoC\n", a->service.c_str(), a->name.c_str());
        return 0;
      });
    };
  });
  auto r = std::make_shared<SvcOpts>();
  auto* del = svc->add_subcommand("del", "stop and forget a service");
  del->add_option("--name", r->name, "node name")->required();
  del->add_option("--service", r->service, "service name")->required();
  del->add_flag("--force", r->force,
                "stop the image service even while lazy layers are mounted (their readers get I/O errors)");
  del->callback([&ctx, r] {
    ctx.action = [&ctx, r] {
      return withNodes(ctx, "dpu service del", [&](NodeManager& nodes) {
        auto client = agentFor(nodes, r->name);
        if (!client.ok()) return fail("dpu service del", client.error());
        if (r->service == "images" && !r->force) {
          if (Status idle = ImageServiceClient(ctx.config.run_root, r->name).idle(); !idle.ok()) {
            return fail("dpu service del", idle.error());
          }
        }
        auto reply = client->call("DELETE", "/v1/services/" + r->service);
        if (!reply.ok()) return fail("dpu service del", reply.error());
        std::printf("service %s removed\n", r->service.c_str());
        return 0;
      });
    };
  });
  auto l = std::make_shared<SvcOpts>();
  auto* list = svc->add_subcommand("list", "services and their state");
  list->add_option("--name", l->name, "node name")->required();
  list->add_flag("--json", l->json, "machine-readable output");
  list->callback([&ctx, l] {
    ctx.action = [&ctx, l] {
      return withNodes(ctx, "dpu service list", [&](NodeManager& nodes) {
        auto client = agentFor(nodes, l->name);
        if (!client.ok()) return fail("dpu service list", client.error());
        auto reply = client->call("GET", "/v1/services");
        if (!reply.ok()) return fail("dpu service list", reply.error());
        auto arr = json::parse(*reply);
        if (l->json) {
          std::printf("%s\n", dumpJson(arr, 2).c_str());
          return 0;
        }
        std::vector<std::vector<std::string>> rows{
            {"SERVICE", "STATE", "RESTARTS", "PID", "DOMAIN", "CPU-SECONDS", "COMMAND"}};
        for (const auto& s : arr) {
          std::string cmd;
          for (const auto& p : s["argv"]) cmd += (cmd.empty() ? "" : " ") + p.get<std::string>();
          char cpu[32];
          std::snprintf(cpu, sizeof cpu, "%.2f", s.value("cpu_seconds", 0.0));
          rows.push_back({s.value("name", ""), s.value("state", ""), std::to_string(s.value("restarts", 0)),
                          std::to_string(s.value("pid", 0)), s.value("domain", ""), cpu, cmd});
        }
        std::printf("%s", renderTable(rows).c_str());
        return 0;
      });
    };
  });
}

}  // namespace

void registerDpuCommands(CLI::App& app, CliContext& ctx) {
  auto* dpu = app.add_subcommand("dpu", "software DPU nodes: domains, agent, VFs");
  dpu->require_subcommand(1);
  registerUpDown(dpu, ctx);
  registerAgent(dpu, ctx);
  registerStatus(dpu, ctx);
  registerExecTop(dpu, ctx);
  registerVf(dpu, ctx);
  registerServices(dpu, ctx);
}

}  // namespace offcore
