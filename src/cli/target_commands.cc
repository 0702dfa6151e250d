// `offcore target ...` and `offcore volume ...`: the storage gateway and
// the volumes it exports.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <map>

#include "base/byte_size.h"
#include "base/files.h"
#include "base/json.h"
#include "cli/common.h"
#include "cli/volume_replicated.h"
#include "dpu/node_state.h"
#include "gateway/gateway.h"

namespace offcore {

using nlohmann::json;

namespace {

Result<std::pair<std::string, uint16_t>> parseHostPort(const std::string& text) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos) return makeError("bad --listen '" + text + "' (use ADDR:PORT, e.g. 0.0.0.0:4420)");
  std::string port = text.substr(colon + 1);
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(port) > 65535) {
    return makeError("bad port in '" + text + "'");
  }
  return std::make_pair(text.substr(0, colon), static_cast<uint16_t>(std::stoi(port)));
}

void printVolumes(const json& arr) {
  std::vector<std::vector<std::string>> rows{{"VOLUME", "SIZE", "ALLOCATED", "RO", "PARENT", "HOSTS", "NQN"}};
  for (const auto& v : arr) {
    rows.push_back({v.value("name", ""), humanBytes(v.value("size_bytes", 0ULL)),
                    humanBytes(v.value("allocated_bytes", 0ULL)), v.value("read_only", false) ? "yes" : "",
                    v["parent"].is_string() ? v["parent"].get<std::string>() : "",
                    std::to_string(v.value("controllers", 0)), v.value("nqn", "")});
  }
  std::printf("%s", renderTable(rows).c_str());
}

// The secrets a create or allow just made: printed once, here, and never again.
void printNewSecrets(const json& doc) {
  if (!doc.is_object() || !doc.contains("new_secrets") || !doc["new_secrets"].is_array()) return;
  std::printf(
      "DH-HMAC-CHAP secrets (shown once; give each to its node with `offcore disk attach ... "
      "--dhchap-secret` or --secret-file):\n");
  for (const auto& e : doc["new_secrets"]) {
    std::printf("  %s\n", e.value("nqn", "").c_str());
    if (e.contains("dhchap_secret")) std::printf("    dhchap_secret      %s\n", e.value("dhchap_secret", "").c_str());
    if (e.contains("dhchap_ctrl_secret")) {
      std::printf("    dhchap_ctrl_secret %s\n", e.value("dhchap_ctrl_secret", "").c_str());
    }
  }
}

// `volume get`: the volume and, per allowed host, how it proves itself.
void printVolumeDetail(const json& v) {
  printVolumes(json::array({v}));
  const auto& hosts = v.contains("hosts") && v["hosts"].is_array() ? v["hosts"] : json::array();
  if (hosts.empty()) {
    std::printf("access: any host (no allow-list; NQNs are not checked)\n");
    return;
  }
  std::vector<std::vector<std::string>> rows{{"ALLOWED HOST", "ACCESS"}};
  for (const auto& h : hosts) {
    std::string auth = h.value("auth", "NQN only");
    if (h.value("bidirectional", false)) auth += " (bidirectional)";
    if (auth == "NQN only") auth += " (self-declared: any fabric host can claim this NQN)";
    rows.push_back({h.value("nqn", ""), auth});
  }
  std::printf("%s", renderTable(rows).c_str());
}

// Runs fn with the gateway --target names (or the only one running).
template <typename Fn>
int withGateway(const CliContext& ctx, const char* what, const std::string& target, Fn&& fn) {
  auto gw = GatewayClient::open(ctx.config.run_root, target, 30000);
  if (!gw.ok()) return fail(what, gw.error());
  return fn(*gw);
}

json documentOf(const GatewayVolume& v) { return json::parse(v.json, nullptr, false); }

int printVolume(const char* what, const Result<GatewayVolume>& v, bool as_json) {
  if (!v.ok()) return fail(what, v.error());
  json doc = documentOf(*v);
  if (as_json) {
    std::printf("%s\n", dumpJson(doc, 2).c_str());
  } else {
    printVolumes(json::array({doc}));
    printNewSecrets(doc);
  }
  return 0;
}

Result<uint64_t> sizeOption(const std::string& text) {
  auto size = parseByteSize(text);
  if (!size.ok()) return size.error().wrap("--size");
  return size;
}

}  // namespace

void registerTargetCommands(CLI::App& app, CliContext& ctx) {
  auto* target = app.add_subcommand("target", "the NVMe/TCP storage gateway");
  target->require_subcommand(1);

  struct ServeOpts {
    std::string listen = "0.0.0.0:4420", data, name = "stor", capacity;
    int poll_groups = 0;
    int busy_poll_us = 0;
  };
  auto s = std::make_shared<ServeOpts>();
  auto* serve = target->add_subcommand("serve", "serve a volume store over NVMe/TCP");
  serve->add_option("--listen", s->listen, "ADDR:PORT for NVMe/TCP")->capture_default_str();
  serve->add_option("--data", s->data, "the store's directory")->required();
  serve->add_option("--name", s->name, "gateway name (NQNs and the API socket use it)")->capture_default_str();
  serve->add_option("--capacity", s->capacity, "thin pool limit, e.g. 20G (default: the filesystem's)");
  serve->add_option("--poll-groups", s->poll_groups,
                    "I/O threads, each pinned to one allowed cpu (default 0: one per cpu in this process's "
                    "affinity mask). Choose the cpus with taskset or a cpuset, e.g. `taskset -c 2,3 offcore "
                    "target serve ...` runs 2 groups on cpus 2 and 3; more groups than cpus only take turns");
  serve
      ->add_option("--busy-poll-us", s->busy_poll_us,
                   "after its last event a poll group keeps polling this many microseconds before it sleeps "
                   "(0: off). For cpus given to the gateway alone: an answer that comes in time costs no "
                   "wake-up, and the spin is cpu spent waiting")
      ->check(CLI::Range(0, 1000000))
      ->capture_default_str();
  serve->callback([&ctx, s] {
    ctx.action = [&ctx, s] {
      auto hp = parseHostPort(s->listen);
      if (!hp.ok()) return fail("target serve", hp.error());
      GatewayConfig cfg;
      cfg.name = s->name;
      cfg.data_dir = s->data;
      cfg.listen_addr = hp->first;
      cfg.port = hp->second;
      cfg.run_root = ctx.config.run_root;
      cfg.poll_groups = s->poll_groups;
      cfg.busy_poll = std::chrono::microseconds(s->busy_poll_us);
      if (!s->capacity.empty()) {
        auto cap = parseByteSize(s->capacity);
        if (!cap.ok()) return fail("target serve", cap.error());
        cfg.capacity_bytes = *cap;
      }
      StorageGateway gw(cfg);
      if (auto st = gw.start(); !st.ok()) return fail("target serve", st.error());
      std::printf("gateway %s: NVMe/TCP on %s, API %s\n", s->name.c_str(), s->listen.c_str(), gw.apiSocket().c_str());
      std::fflush(stdout);
      if (auto st = gw.run(); !st.ok()) return fail("target serve", st.error());
      return 0;
    };
  });

  auto data = std::make_shared<std::string>();
  auto fsck_json = std::make_shared<bool>(false);
  auto* fsck = target->add_subcommand("fsck", "check a (stopped) store's consistency");
  fsck->add_option("--data", *data, "the store's directory")->required();
  fsck->add_flag("--json", *fsck_json, "machine-readable output");
  fsck->callback([&ctx, data, fsck_json] {
    ctx.action = [data, fsck_json] {
      auto r = VolumeStore::fsck(*data);
      if (!r.ok()) return fail("target fsck", r.error());
      if (*fsck_json) {
        json j{{"clean", r->clean},
               {"problems", r->problems},
               {"volumes", r->volumes},
               {"clusters_in_use", r->clusters_in_use},
               {"journal_records", r->journal_records},
               {"torn_tail", r->torn_tail}};
        std::printf("%s\n", dumpJson(j, 2).c_str());
      } else {
        std::printf("%s: %s, %llu volumes, %llu clusters in use, %llu journal records%s\n", data->c_str(),
                    r->clean ? "clean" : "NOT CLEAN", static_cast<unsigned long long>(r->volumes),
                    static_cast<unsigned long long>(r->clusters_in_use),
                    static_cast<unsigned long long>(r->journal_records),
                    r->torn_tail ? " (a torn last record was dropped)" : "");
        for (const auto& p : r->problems) std::printf("  problem: %s\n", p.c_str());
      }
      return r->clean ? 0 : 2;
    };
  });

  auto list_json = std::make_shared<bool>(false);
  auto* list = target->add_subcommand("list", "running gateways on this machine");
  list->add_flag("--json", *list_json, "machine-readable output");
  list->callback([&ctx, list_json] {
    ctx.action = [&ctx, list_json] {
      json arr = json::array();
      std::error_code ec;
      if (auto swept = sweepGatewayRunDirs(ctx.config.run_root); !swept.ok()) {
        std::fprintf(stderr, "warning: %s\n", swept.error().message.c_str());
      }
      for (const auto& e : std::filesystem::directory_iterator(ctx.config.run_root + "/targets", ec)) {
        auto sock = e.path().string() + "/api.sock";
        if (!pathExists(sock)) continue;
        auto gw = GatewayClient::open(ctx.config.run_root, sock, 2000);
        auto info = gw.ok() ? gw->targetJson() : Result<std::string>(gw.error());
        if (info.ok()) arr.push_back(json::parse(*info, nullptr, false));
      }
      if (*list_json) {
        std::printf("%s\n", dumpJson(arr, 2).c_str());
        return 0;
      }
      std::vector<std::vector<std::string>> rows{{"GATEWAY", "LISTEN", "VOLUMES", "ALLOCATED", "CONTROLLERS"}};
      for (const auto& t : arr) {
        rows.push_back({t.value("name", ""), t.value("listen", "") + ":" + std::to_string(t.value("port", 0)),
                        std::to_string(t.value("volumes", 0)), humanBytes(t.value("allocated_bytes", 0ULL)),
                        std::to_string(t["controllers"].size())});
      }
      std::printf("%s", renderTable(rows).c_str());
      return 0;
    };
  });
}

void registerVolumeCommands(CLI::App& app, CliContext& ctx) {
  auto* volume = app.add_subcommand("volume", "thin volumes, snapshots and clones on a gateway");
  volume->require_subcommand(1);
  struct Opts {
    std::string name, size, target, other;
    std::vector<std::string> hosts, given_secrets, targets;
    int replicas = 0;  // 0: a plain volume on one gateway
    bool json = false, force = false, nqn_only = false, bidirectional = false, rotate = false, replicated = false;
  };
  // The allowed_hosts entries: plain NQNs (a new host gets a generated
  // secret), or objects when the command asks for something else.
  auto hostEntries = [](const Opts& o) -> Result<std::vector<HostAccess>> {
    std::map<std::string, std::string> given;
    for (const auto& g : o.given_secrets) {
      auto eq = g.find('=');
      if (eq == std::string::npos)
        return makeError("--host-secret takes NQN=DHHC-1:..., not '" + g.substr(0, 40) + "'");
      given[g.substr(0, eq)] = g.substr(eq + 1);
    }
    std::vector<HostAccess> out;
    for (const auto& h : o.hosts) {
      HostAccess a{h, "", ""};
      if (o.nqn_only) a.dhchap_secret = "none";
      if (o.rotate) a.dhchap_secret = "generate";
      if (auto it = given.find(h); it != given.end()) a.dhchap_secret = it->second;
      if (o.bidirectional) a.dhchap_ctrl_secret = "generate";
      out.push_back(std::move(a));
    }
    for (const auto& [nqn, _] : given) {
      if (std::find(o.hosts.begin(), o.hosts.end(), nqn) == o.hosts.end()) {
        return makeError("--host-secret for " + nqn + " which is not an allowed host");
      }
    }
    return out;
  };
  auto addAuthOptions = [](CLI::App* cmd, Opts& o) {
    cmd->add_flag("--nqn-only", o.nqn_only,
                  "no DH-HMAC-CHAP secret for these hosts: access by (self-declared) NQN only");
    cmd->add_flag("--bidirectional", o.bidirectional,
                  "also make a controller secret per host, so the node can authenticate the gateway");
    cmd->add_option("--host-secret", o.given_secrets, "NQN=DHHC-1:..: use this secret for a host instead of a new one");
  };

  auto c = std::make_shared<Opts>();
  registerVolumeReplicaCommands(volume, ctx);
  auto* create = volume->add_subcommand("create", "create a thin volume");
  create->add_option("name", c->name, "volume name")->required();
  create->add_option("--size", c->size, "size, e.g. 10G")->required();
  create->add_option("--target", c->target, "gateway: name, ADDR:PORT or socket path");
  create->add_option("--allow-host", c->hosts, "host NQN allowed to connect (repeatable; default: any host)");
  create->add_flag("--json", c->json, "print the volume as JSON");
  create->add_option("--replicas", c->replicas,
                     "a replicated volume: this many copies, one per storage host of --targets (1-8; attach it "
                     "with `disk attach --volume NAME`)");
  create->add_option("--targets", c->targets, "the storage hosts (gateways) of the replicas: A,B[,C]")->delimiter(',');
  addAuthOptions(create, *c);
  create->callback([&ctx, c, hostEntries] {
    ctx.action = [&ctx, c, hostEntries] {
      auto entries = hostEntries(*c);
      if (!entries.ok()) return fail("volume create", entries.error());
      auto size = sizeOption(c->size);
      if (!size.ok()) return fail("volume create", size.error());
      if (c->replicas > 0 || !c->targets.empty()) {
        if (!c->target.empty()) {
          return fail("volume create", makeError("a replicated volume takes --targets A,B[,C], not --target"));
        }
        if (c->replicas < 1) return fail("volume create", makeError("--targets needs --replicas N (1 to 8)"));
        return createReplicatedVolume(ctx, c->name, *size, c->replicas, c->targets, *entries, c->json);
      }
      return withGateway(ctx, "volume create", c->target, [&](const GatewayClient& gw) {
        return printVolume("volume create", gw.create(c->name, *size, *entries), c->json);
      });
    };
  });

  auto l = std::make_shared<Opts>();
  auto* list = volume->add_subcommand("list", "volumes on a gateway");
  list->add_option("--target", l->target, "gateway");
  list->add_flag("--json", l->json, "machine-readable output");
  list->add_flag("--replicated", l->replicated, "the replicated volumes of the cluster instead");
  list->callback([&ctx, l] {
    ctx.action = [&ctx, l] {
      if (l->replicated) return listReplicatedVolumes(ctx, l->json);
      return withGateway(ctx, "volume list", l->target, [&](const GatewayClient& gw) {
        auto vols = gw.list();
        if (!vols.ok()) return fail("volume list", vols.error());
        json arr = json::array();
        for (const auto& v : *vols) arr.push_back(documentOf(v));
        if (l->json) {
          std::printf("%s\n", dumpJson(arr, 2).c_str());
        } else {
          printVolumes(arr);
        }
        return 0;
      });
    };
  });

  auto sn = std::make_shared<Opts>();
  auto* snap = volume->add_subcommand("snapshot", "take a read-only snapshot: VOL SNAP");
  snap->add_option("volume", sn->name, "volume")->required();
  snap->add_option("snapshot", sn->other, "snapshot name")->required();
  snap->add_option("--target", sn->target, "gateway");
  snap->add_flag("--json", sn->json, "print the snapshot as JSON");
  snap->callback([&ctx, sn] {
    ctx.action = [&ctx, sn] {
      if (sn->target.empty()) {
        auto rv = loadReplicatedVolume(ctx, sn->name);
        if (rv.ok()) return snapshotReplicatedVolume(ctx, *rv, sn->other, sn->json);
        if (rv.error().code != ENOENT) return fail("volume snapshot", rv.error());
      }
      return withGateway(ctx, "volume snapshot", sn->target, [&](const GatewayClient& gw) {
        return printVolume("volume snapshot", gw.snapshot(sn->name, sn->other), sn->json);
      });
    };
  });

  auto cl = std::make_shared<Opts>();
  auto* clone = volume->add_subcommand("clone", "a writable clone of a snapshot: SNAP NEW");
  clone->add_option("snapshot", cl->name, "snapshot")->required();
  clone->add_option("new", cl->other, "clone name")->required();
  clone->add_option("--target", cl->target, "gateway");
  clone->add_flag("--json", cl->json, "print the clone as JSON");
  clone->callback([&ctx, cl] {
    ctx.action = [&ctx, cl] {
      if (cl->target.empty()) {
        auto rv = loadReplicatedVolume(ctx, cl->name);
        if (rv.ok()) return cloneReplicatedVolume(ctx, *rv, cl->other, cl->json);
        if (rv.error().code != ENOENT) return fail("volume clone", rv.error());
      }
      return withGateway(ctx, "volume clone", cl->target, [&](const GatewayClient& gw) {
        return printVolume("volume clone", gw.clone(cl->name, cl->other), cl->json);
      });
    };
  });

  auto rs = std::make_shared<Opts>();
  auto* resize = volume->add_subcommand("resize", "grow a volume");
  resize->add_option("name", rs->name, "volume")->required();
  resize->add_option("--size", rs->size, "new size, e.g. 20G")->required();
  resize->add_option("--target", rs->target, "gateway");
  resize->callback([&ctx, rs] {
    ctx.action = [&ctx, rs] {
      auto size = sizeOption(rs->size);
      if (!size.ok()) return fail("volume resize", size.error());
      if (rs->target.empty()) {
        auto rv = loadReplicatedVolume(ctx, rs->name);
        if (rv.ok()) return resizeReplicatedVolume(ctx, *rv, *size);
        if (rv.error().code != ENOENT) return fail("volume resize", rv.error());
      }
      return withGateway(ctx, "volume resize", rs->target, [&](const GatewayClient& gw) {
        return printVolume("volume resize", gw.resize(rs->name, *size), false);
      });
    };
  });

  auto d = std::make_shared<Opts>();
  auto* del = volume->add_subcommand("delete", "delete a volume or snapshot (not one with clones)");
  del->add_option("name", d->name, "volume")->required();
  del->add_option("--target", d->target, "gateway");
  del->add_flag("--force", d->force, "also when hosts are attached (they see the namespace go away)");
  del->callback([&ctx, d] {
    ctx.action = [&ctx, d] {
      if (d->target.empty()) {
        auto rv = loadReplicatedVolume(ctx, d->name);
        if (rv.ok()) return deleteReplicatedVolume(ctx, *rv, d->force);
        if (rv.error().code != ENOENT) return fail("volume delete", rv.error());
      }
      return withGateway(ctx, "volume delete", d->target, [&](const GatewayClient& gw) {
        auto found = gw.find(d->name);
        if (!found.ok()) return fail("volume delete", found.error());
        if (!*found) {
          return fail("volume delete", makeError("gateway " + gw.name() + " has no volume '" + d->name +
                                                 "' (see `offcore volume list`)"));
        }
        if (auto s = gw.remove(d->name, d->force); !s.ok()) return fail("volume delete", s.error());
        std::printf("ok\n");
        return 0;
      });
    };
  });

  auto h = std::make_shared<Opts>();
  auto* hosts = volume->add_subcommand("allow", "set the host NQNs allowed on a volume (none = any host)");
  hosts->add_option("name", h->name, "volume")->required();
  hosts->add_option("--host", h->hosts, "host NQN (repeatable)");
  hosts->add_option("--target", h->target, "gateway");
  hosts->add_flag("--rotate", h->rotate, "new DH-HMAC-CHAP secrets for the listed hosts (connected queues stay)");
  hosts->add_flag("--json", h->json, "print the volume as JSON");
  addAuthOptions(hosts, *h);
  hosts->callback([&ctx, h, hostEntries] {
    ctx.action = [&ctx, h, hostEntries] {
      auto entries = hostEntries(*h);
      if (!entries.ok()) return fail("volume allow", entries.error());
      return withGateway(ctx, "volume allow", h->target, [&](const GatewayClient& gw) {
        return printVolume("volume allow", gw.setHostAccess(h->name, *entries), h->json);
      });
    };
  });

  auto g = std::make_shared<Opts>();
  auto* get = volume->add_subcommand("get", "one volume, with how each allowed host is authenticated");
  get->add_option("name", g->name, "volume")->required();
  get->add_option("--target", g->target, "gateway");
  get->add_flag("--json", g->json, "machine-readable output");
  get->callback([&ctx, g] {
    ctx.action = [&ctx, g] {
      if (g->target.empty()) {
        auto rv = loadReplicatedVolume(ctx, g->name);
        if (rv.ok()) return getReplicatedVolume(ctx, *rv, g->json);
        if (rv.error().code != ENOENT) return fail("volume get", rv.error());
      }
      return withGateway(ctx, "volume get", g->target, [&](const GatewayClient& gw) {
        auto v = gw.find(g->name);
        if (!v.ok()) return fail("volume get", v.error());
        if (!*v) {
          return fail("volume get", makeError("gateway " + gw.name() + " has no volume '" + g->name +
                                              "' (see `offcore volume list`)"));
        }
        if (g->json) {
          std::printf("%s\n", dumpJson(documentOf(**v), 2).c_str());
        } else {
          printVolumeDetail(documentOf(**v));
        }
        return 0;
      });
    };
  });
}

}  // namespace offcore
