// `offcore target ...` and `offcore volume ...`: the storage gateway and
// the volumes it exports.
#include <cstdio>
#include <filesystem>

#include "api/api_client.h"
#include "base/byte_size.h"
#include "base/files.h"
#include "base/json.h"
#include "cli/common.h"
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

// The gateway to talk to: --target, else the only one running.
Result<ApiClient> gatewayClient(const CliContext& ctx, const std::string& target) {
  if (!target.empty()) {
    OC_ASSIGN_OR_RETURN(std::string sock, resolveGatewaySocket(ctx.config.run_root, target));
    return ApiClient(sock, 30000);
  }
  std::vector<std::string> found;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(ctx.config.run_root + "/targets", ec)) {
    // A gateway killed with SIGKILL leaves its socket behind: count only live ones.
    std::string sock = e.path().string() + "/api.sock";
    if (pathExists(sock) && ApiClient(sock, 1000).get("/v1/target").ok()) found.push_back(e.path().filename().string());
  }
  if (found.size() == 1) return ApiClient(gatewaySocketPath(ctx.config.run_root, found[0]), 30000);
  if (found.empty()) return makeError("no gateway is running (start one with `offcore target serve`)");
  return makeError("several gateways are running; name one with --target");
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

int callAndPrint(const CliContext& ctx, const std::string& what, const std::string& target, const std::string& method,
                 const std::string& path, const json& payload, bool as_json) {
  auto client = gatewayClient(ctx, target);
  if (!client.ok()) return fail(what, client.error());
  auto reply = client->call(method, path, payload.is_null() ? "" : dumpJson(payload));
  if (!reply.ok()) return fail(what, reply.error());
  auto doc = json::parse(*reply, nullptr, false);
  if (as_json) {
    std::printf("%s\n", dumpJson(doc, 2).c_str());
  } else if (doc.is_array()) {
    printVolumes(doc);
  } else if (doc.is_object() && doc.contains("nqn")) {
    printVolumes(json::array({doc}));
  } else {
    std::printf("ok\n");
  }
  return 0;
}

}  // namespace

void registerTargetCommands(CLI::App& app, CliContext& ctx) {
  auto* target = app.add_subcommand("target", "the NVMe/TCP storage gateway");
  target->require_subcommand(1);

  struct ServeOpts {
    std::string listen = "0.0.0.0:4420", data, name = "stor", capacity;
    int poll_groups = 0;
  };
  auto s = std::make_shared<ServeOpts>();
  auto* serve = target->add_subcommand("serve", "serve a volume store over NVMe/TCP");
  serve->add_option("--listen", s->listen, "ADDR:PORT for NVMe/TCP")->capture_default_str();
  serve->add_option("--data", s->data, "the store's directory")->required();
  serve->add_option("--name", s->name, "gateway name (NQNs and the API socket use it)")->capture_default_str();
  serve->add_option("--capacity", s->capacity, "thin pool limit, e.g. 20G (default: the filesystem's)");
  serve->add_option("--poll-groups", s->poll_groups, "I/O threads (default: one per cpu)");
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
        auto reply = ApiClient(sock, 2000).call("GET", "/v1/target");
        if (reply.ok()) arr.push_back(json::parse(*reply, nullptr, false));
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
    std::vector<std::string> hosts;
    bool json = false, force = false;
  };

  auto c = std::make_shared<Opts>();
  auto* create = volume->add_subcommand("create", "create a thin volume");
  create->add_option("name", c->name, "volume name")->required();
  create->add_option("--size", c->size, "size, e.g. 10G")->required();
  create->add_option("--target", c->target, "gateway: name, ADDR:PORT or socket path");
  create->add_option("--allow-host", c->hosts, "host NQN allowed to connect (repeatable; default: any host)");
  create->add_flag("--json", c->json, "print the volume as JSON");
  create->callback([&ctx, c] {
    ctx.action = [&ctx, c] {
      json body{{"name", c->name}, {"size", c->size}};
      if (!c->hosts.empty()) body["allowed_hosts"] = c->hosts;
      return callAndPrint(ctx, "volume create", c->target, "POST", "/v1/volumes", body, c->json);
    };
  });

  auto l = std::make_shared<Opts>();
  auto* list = volume->add_subcommand("list", "volumes on a gateway");
  list->add_option("--target", l->target, "gateway");
  list->add_flag("--json", l->json, "machine-readable output");
  list->callback([&ctx, l] {
    ctx.action = [&ctx, l] {
      return callAndPrint(ctx, "volume list", l->target, "GET", "/v1/volumes", nullptr, l->json);
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
      return callAndPrint(ctx, "volume snapshot", sn->target, "POST", "/v1/volumes/" + sn->name + "/snapshot",
                          json{{"name", sn->other}}, sn->json);
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
      return callAndPrint(ctx, "volume clone", cl->target, "POST", "/v1/volumes/" + cl->name + "/clone",
                          json{{"name", cl->other}}, cl->json);
    };
  });

  auto rs = std::make_shared<Opts>();
  auto* resize = volume->add_subcommand("resize", "grow a volume");
  resize->add_option("name", rs->name, "volume")->required();
  resize->add_option("--size", rs->size, "new size, e.g. 20G")->required();
  resize->add_option("--target", rs->target, "gateway");
  resize->callback([&ctx, rs] {
    ctx.action = [&ctx, rs] {
      return callAndPrint(ctx, "volume resize", rs->target, "POST", "/v1/volumes/" + rs->name + "/resize",
                          json{{"size", rs->size}}, false);
    };
  });

  auto d = std::make_shared<Opts>();
  auto* del = volume->add_subcommand("delete", "delete a volume or snapshot (not one with clones)");
  del->add_option("name", d->name, "volume")->required();
  del->add_option("--target", d->target, "gateway");
  del->add_flag("--force", d->force, "also when hosts are attached (they see the namespace go away)");
  del->callback([&ctx, d] {
    ctx.action = [&ctx, d] {
      return callAndPrint(ctx, "volume delete", d->target, "DELETE",
                          "/v1/volumes/" + d->name + (d->force ? "?force=true" : ""), nullptr, false);
    };
  });

  auto h = std::make_shared<Opts>();
  auto* hosts = volume->add_subcommand("allow", "set the host NQNs allowed on a volume (none = any host)");
  hosts->add_option("name", h->name, "volume")->required();
  hosts->add_option("--host", h->hosts, "host NQN (repeatable)");
  hosts->add_option("--target", h->target, "gateway");
  hosts->callback([&ctx, h] {
    ctx.action = [&ctx, h] {
      return callAndPrint(ctx, "volume allow", h->target, "POST", "/v1/volumes/" + h->name + "/hosts",
                          json{{"allowed_hosts", h->hosts}}, false);
    };
  });
}

}  // namespace offcore
