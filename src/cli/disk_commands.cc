// `offcore disk ...`: attach an NVMe/TCP namespace to a node. The initiator
// and the FUSE block file run as a supervised service of the node's agent,
// so they live in the SoC domain; the host sees only the file
// /run/offcore/<node>/disks/<name> (the "NVMe disk the DPU presents").
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <thread>

#include "api/api_client.h"
#include "base/files.h"
#include "base/json.h"
#include "base/log.h"
#include "base/subprocess.h"
#include "cli/common.h"
#include "cli/disk_common.h"
#include "cli/volume_replicated.h"
#include "disk/disk_holders.h"
#include "disk/fd_keeper.h"
#include "disk/fuse_disk.h"
#include "disk/kept_disk.h"
#include "dpu/mounts.h"
#include "dpu/node.h"
#include "nvme/auth/dhchap_key.h"
#include "nvme/host/host.h"
#include "nvme/host/host_identity.h"

namespace offcore {

using nlohmann::json;

namespace {

// Starts the node's disk fd keeper unless it runs: it must outlive every
// restart of the disk services, so it is a service of its own.
Status ensureDiskKeeper(const CliContext& ctx, ApiClient& agent, const std::string& node) {
  std::string keeper = diskKeeper(ctx, node);
  if (fdKeeperAnswers(keeper)) return okStatus();
  json body{{"name", "disks-fds"}, {"argv", {selfExe(), "disk", "fd-keeper", "--socket", keeper}}};
  auto added = agent.post("/v1/services", dumpJson(body));
  if (!added.ok()) return added.error().wrap("start the disk fd keeper");
  for (int i = 0; i < 100 && !fdKeeperAnswers(keeper); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (!fdKeeperAnswers(keeper)) {
    return makeError("the disk fd keeper of node " + node + " did not come up (see /run/offcore/" + node +
                     "/disks-fds.log)");
  }
  return okStatus();
}

bool isMounted(const std::string& path) {
  for (const auto& m : mountsBelow(path)) {
    if (m == path) return true;
  }
  return false;
}

}  // namespace

void registerDiskCommands(CLI::App& app, CliContext& ctx) {
  auto* disk = app.add_subcommand("disk", "NVMe/TCP disks a node's SoC presents to its host");
  disk->require_subcommand(1);

  struct Opts {
    std::string uri, node, name, file, secret, ctrl_secret, secret_file, journal_id, journal, volume;
    std::vector<std::string> replicas;
    int queues = 0, depth = 32;  // queues 0: one per cpu of the SoC
    int claim_ttl = volumes::kDefaultClaimTtlS;
    DiskTimeouts timeouts;
    bool json = false, force = false;
  };
  auto a = std::make_shared<Opts>();
  auto* attach = disk->add_subcommand("attach", "attach nvme-tcp://ADDR:PORT/NQN as /run/offcore/NODE/disks/NAME");
  attach->add_option("uri", a->uri, "nvme-tcp://ADDR:PORT/NQN (or --volume)");
  attach->add_option("--volume", a->volume,
                     "a replicated volume (`volume create --replicas`): the disk is mirrored over its replicas");
  attach->add_option("--node", a->node, "the node whose SoC runs the initiator")->required();
  attach->add_option("--name", a->name, "disk name (default: the volume name)");
  attach
      ->add_option("--queues", a->queues,
                   "I/O queues (default 0: one per cpu of the node's SoC, as Linux's nvme-tcp has one per cpu); "
                   "each is one TCP connection the disk's loop thread reads")
      ->check(CLI::Range(0, 64))
      ->capture_default_str();
  attach->add_option("--queue-depth", a->depth, "commands per queue")->capture_default_str();
  attach->add_option("--io-timeout", a->timeouts.io, "seconds I/O waits for a lost target before failing")
      ->capture_default_str();
  attach
      ->add_option("--fast-io-fail", a->timeouts.fast_io_fail,
                   "seconds after the path is lost from which I/O fails at once until it returns (-1: off)")
      ->capture_default_str();
  attach
      ->add_option("--ctrl-loss-timeout", a->timeouts.ctrl_loss,
                   "seconds after the path is lost at which reconnecting stops and the disk is failed (-1: never)")
      ->capture_default_str();
  attach->add_flag("--json", a->json, "print the disk as JSON");
  attach->add_option("--dhchap-secret", a->secret, "this node's DH-HMAC-CHAP secret for the volume (DHHC-1:..:..:)");
  attach->add_option("--dhchap-ctrl-secret", a->ctrl_secret,
                     "the gateway's controller secret: the node authenticates the gateway too");
  attach->add_option("--replica", a->replicas,
                     "another replica of the same volume (repeatable, nvme-tcp://...): the SoC mirrors the disk over "
                     "all of them (a nexus; docs/STORAGE.md)");
  attach->add_option("--nexus-id", a->journal_id,
                     "names the mirrored volume cluster-wide: its journal and claims are under this id in the "
                     "cluster store (<cluster_dir>/nexus/ID.json, or etcd; default: the disk name)");
  attach
      ->add_option("--claim-ttl", a->claim_ttl,
                   "seconds a node that died keeps its replicas' claims in etcd (the disk pauses when it cannot "
                   "renew them for 2/3 of this)")
      ->check(CLI::Range(3, 600))
      ->capture_default_str();
  attach->add_option(
      "--secret-file", a->secret_file,
      "a 0600 file with dhchap_secret=... [and dhchap_ctrl_secret=...] lines (keeps secrets off the command line)");
  attach->callback([&ctx, a] {
    ctx.action = [&ctx, a] {
      if (!a->volume.empty()) {
        // A replicated volume: its replicas, its name as the nexus id.
        if (!a->uri.empty() || !a->replicas.empty() || !a->journal_id.empty()) {
          return fail("disk attach", makeError("--volume names the replicas: no URI, --replica or --nexus-id"));
        }
        auto rv = loadReplicatedVolume(ctx, a->volume);
        if (!rv.ok()) return fail("disk attach", rv.error().wrap("see `offcore volume list --replicated`"));
        a->uri = rv->replicas[0].uri;
        for (size_t i = 1; i < rv->replicas.size(); ++i) a->replicas.push_back(rv->replicas[i].uri);
        a->journal_id = rv->name;
        if (a->name.empty()) a->name = rv->name;
      }
      if (a->uri.empty()) return fail("disk attach", makeError("give nvme-tcp://ADDR:PORT/NQN or --volume NAME"));
      auto d = parseDiskUri(a->uri);
      if (!d.ok()) return fail("disk attach", d.error());
      std::string name = a->name;
      if (name.empty()) name = d->nqn.substr(d->nqn.rfind(':') + 1);
      if (name.empty() || name.size() > 48 || name.find_first_of("/ ") != std::string::npos) {
        return fail("disk attach", makeError("bad disk name '" + name + "'; pass --name"));
      }
      auto nodes = NodeManager::create(ctx.config);
      if (!nodes.ok()) return fail("disk attach", nodes.error());
      auto st = nodes->state(a->node);
      if (!st.ok()) return fail("disk attach", st.error());
      std::string file = disksDir(ctx, a->node) + "/" + name;
      if (pathExists(file + ".json") || isMounted(file)) {
        return fail("disk attach",
                    makeError("node " + a->node + " already has a disk '" + name + "' (see `offcore disk list`)"));
      }
      DiskSecrets secrets{a->secret, a->ctrl_secret};
      if (!a->secret_file.empty()) {
        if (!a->secret.empty() || !a->ctrl_secret.empty()) {
          return fail("disk attach",
                      makeError("give the secrets either on the command line or in --secret-file, not both"));
        }
        auto fromFile = readSecretFile(a->secret_file);
        if (!fromFile.ok()) return fail("disk attach", fromFile.error());
        secrets = *fromFile;
      }
      if (auto s = checkSecrets(secrets); !s.ok()) return fail("disk attach", s.error());
      if (auto s = checkTimeouts(a->timeouts); !s.ok()) return fail("disk attach", s.error());
      (void)makeDirs(disksDir(ctx, a->node));
      std::vector<std::string> argv{selfExe(),       "disk",
                                    "serve",         a->uri,
                                    "--file",        file,
                                    "--node",        a->node,
                                    "--queues",      std::to_string(a->queues),
                                    "--queue-depth", std::to_string(a->depth),
                                    "--io-timeout",  std::to_string(a->timeouts.io)};
      // In the service's argv, so the agent restarts the disk with the same bounds.
      argv.insert(argv.end(), {"--fast-io-fail", std::to_string(a->timeouts.fast_io_fail), "--ctrl-loss-timeout",
                               std::to_string(a->timeouts.ctrl_loss)});
      if (!a->replicas.empty()) {
        if (a->replicas.size() + 1 > 8) return fail("disk attach", makeError("at most 8 replicas"));
        for (const auto& r : a->replicas) {
          if (auto p = parseDiskUri(r); !p.ok()) return fail("disk attach", p.error().wrap("--replica"));
          argv.insert(argv.end(), {"--replica", r});
        }
        std::string id = a->journal_id.empty() ? name : a->journal_id;
        if (id.empty() || id.size() > 128 || id.find_first_of("/ ") != std::string::npos || id[0] == '.') {
          return fail("disk attach", makeError("bad --nexus-id '" + id + "'"));
        }
        auto journal = nexusJournalRef(ctx, id);
        if (!journal.ok()) return fail("disk attach", journal.error());
        argv.insert(argv.end(), {"--journal", *journal, "--claim-ttl", std::to_string(a->claim_ttl)});
      }
      std::string secret_path = secretsDir(ctx, a->node) + "/disk-" + name + ".secret";
      if (!secrets.secret.empty()) {
        if (auto s = makePrivateDir(secretsDir(ctx, a->node)); !s.ok()) return fail("disk attach", s.error());
        std::string text = "dhchap_secret=" + secrets.secret + "\n";
        if (!secrets.ctrl_secret.empty()) text += "dhchap_ctrl_secret=" + secrets.ctrl_secret + "\n";
        if (auto s = writeFileAtomic(secret_path, text, 0600); !s.ok()) return fail("disk attach", s.error());
        argv.insert(argv.end(), {"--secret-file", secret_path});
      }
      ApiClient agent(nodes->layout(a->node).api_socket, 10000);
      if (auto k = ensureDiskKeeper(ctx, agent, a->node); !k.ok()) return fail("disk attach", k.error());
      json body{{"name", "disk-" + name}, {"argv", argv}};
      auto added = agent.call("POST", "/v1/services", dumpJson(body));
      if (!added.ok()) return fail("disk attach", added.error());
      // Ready once the FUSE file answers; the service log says why if not.
      std::string log = ctx.config.run_root + "/" + a->node + "/disk-" + name + ".log";
      // Polled every 10 ms for 10 s: a flat rootfs waits on this in a
      // container create.
      for (int i = 0; i < 1000; ++i) {
        if (pathExists(file + ".json") && isMounted(file)) {
          auto info = readFile(file + ".json");
          if (a->json)
            std::printf("%s", info.valueOr("{}").c_str());
          else
            std::printf("attached %s at %s\n", d->nqn.c_str(), file.c_str());
          return 0;
        }
        auto svc = agent.call("GET", "/v1/services/disk-" + name);
        auto sj = json::parse(svc.valueOr("{}"), nullptr, false);
        if (!sj.is_discarded() && sj.value("restarts", 0) > 0) break;  // it failed once: report it
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      (void)agent.call("DELETE", "/v1/services/disk-" + name);
      std::remove(secret_path.c_str());
      auto lines = splitLines(readFile(log).valueOr(""));
      std::string why = lines.empty() ? "no output" : lines.back();
      return fail("disk attach", makeError("the disk did not come up: " + why));
    };
  });

  auto s = std::make_shared<Opts>();
  auto* serve = disk->add_subcommand("serve", "run one disk's initiator and FUSE file (started by `disk attach`)");
  serve->add_option("uri", s->uri, "nvme-tcp://ADDR:PORT/NQN")->required();
  serve->add_option("--file", s->file, "the block file to serve")->required();
  serve->add_option("--node", s->node, "node name (for the host NQN)")->required();
  serve->add_option("--queues", s->queues, "I/O queues (0: one per cpu this process may run on)");
  serve->add_option("--queue-depth", s->depth, "commands per queue");
  serve->add_option("--io-timeout", s->timeouts.io, "seconds");
  serve->add_option("--fast-io-fail", s->timeouts.fast_io_fail, "seconds (-1: off)");
  serve->add_option("--ctrl-loss-timeout", s->timeouts.ctrl_loss, "seconds (-1: never)");
  serve->add_option("--secret-file", s->secret_file, "DH-HMAC-CHAP secrets (0600; written by `disk attach`)");
  serve->add_option("--replica", s->replicas, "another replica of the volume (repeatable): serve a nexus");
  serve->add_option("--journal", s->journal, "the nexus journal (with --replica): DIR/ID.json, or etcd:ID");
  serve->add_option("--claim-ttl", s->claim_ttl, "seconds of the replicas' claims' lease in etcd")
      ->check(CLI::Range(3, 600));
  serve->callback([&ctx, s] {
    ctx.action = [&ctx, s] {
      if (auto st = checkTimeouts(s->timeouts); !st.ok()) return fail("disk serve", st.error());
      DiskServeSpec spec;
      spec.uri = s->uri;
      spec.replicas = s->replicas;
      spec.journal = s->journal;
      spec.claim_ttl_s = s->claim_ttl;
      spec.file = s->file;
      spec.node = s->node;
      spec.secret_file = s->secret_file;
      spec.queues = s->queues;
      spec.depth = s->depth;
      spec.timeouts = s->timeouts;
      return serveDisk(ctx, spec);
    };
  });

  auto keeper = std::make_shared<std::string>();
  auto* fdk = disk->add_subcommand("fd-keeper", "hold the disk services' FUSE connections across their restarts");
  fdk->add_option("--socket", *keeper, "unix socket to serve")->required();
  fdk->callback([&ctx, keeper] { ctx.action = [keeper] { return runFdKeeper(*keeper); }; });

  auto dt = std::make_shared<Opts>();
  auto* detach = disk->add_subcommand("detach", "unmount and detach a disk");
  detach->add_option("name", dt->name, "disk name")->required();
  detach->add_option("--node", dt->node, "node")->required();
  detach->add_flag("--force", dt->force,
                   "detach even while loop devices, mounts or processes use it (their I/O then fails)");
  detach->callback([&ctx, dt] {
    ctx.action = [&ctx, dt] {
      auto nodes = NodeManager::create(ctx.config);
      if (!nodes.ok()) return fail("disk detach", nodes.error());
      auto st = nodes->state(dt->node);
      if (!st.ok()) return fail("disk detach", st.error());
      std::string file = disksDir(ctx, dt->node) + "/" + dt->name;
      // Detaching cuts every user of the file off (ECONNABORTED, then EIO):
      // refuse while anything holds it, as `volume delete` does.
      if (!dt->force && isMounted(file)) {
        HostView view;
        view.self = ::getpid();
        // A loop device lets go of its file asynchronously after `losetup -d`:
        // give a just-released holder a moment before calling the disk busy.
        auto holders = diskHolders(file, view);
        for (int i = 0; i < 10 && !holders.empty(); ++i) {
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
          holders = diskHolders(file, view);
        }
        if (!holders.empty()) {
          return fail("disk detach", makeError("disk " + dt->name + " is busy: " + joinHolders(holders) +
                                                   "; unmount/detach them or pass --force",
                                               EBUSY));
        }
      }
      ApiClient agent(nodes->layout(dt->node).api_socket, 15000);
      auto r = agent.call("DELETE", "/v1/services/disk-" + dt->name);
      if (!r.ok() && !isMounted(file)) return fail("disk detach", r.error());
      // The service unmounts on SIGTERM; make sure, for a daemon that died.
      for (int i = 0; i < 50 && isMounted(file); ++i) {
        (void)runCapture({"fusermount3", "-u", file});
        if (isMounted(file)) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      if (isMounted(file)) (void)unmountBelow(file);
      releaseKept(diskKeeper(ctx, dt->node), keptName(file));  // a service that died leaves it there
      std::remove(file.c_str());
      std::remove((file + ".json").c_str());
      std::remove((secretsDir(ctx, dt->node) + "/disk-" + dt->name + ".secret").c_str());
      std::printf("disk %s detached from node %s\n", dt->name.c_str(), dt->node.c_str());
      return 0;
    };
  });

  auto l = std::make_shared<Opts>();
  auto* list = disk->add_subcommand("list", "attached disks");
  list->add_option("--node", l->node, "node (default: every node)");
  list->add_flag("--json", l->json, "machine-readable output");
  list->callback([&ctx, l] {
    ctx.action = [&ctx, l] {
      auto nodes = NodeManager::create(ctx.config);
      if (!nodes.ok()) return fail("disk list", nodes.error());
      std::vector<std::string> names = l->node.empty() ? nodes->list() : std::vector<std::string>{l->node};
      json arr = json::array();
      for (const auto& n : names) {
        std::error_code ec;
        for (const auto& e : std::filesystem::directory_iterator(disksDir(ctx, n), ec)) {
          if (e.path().extension() != ".json") continue;
          auto j = json::parse(readFile(e.path().string()).valueOr("{}"), nullptr, false);
          if (j.is_discarded()) continue;
          j["node"] = n;
          j["name"] = e.path().stem().string();
          j["mounted"] = isMounted(j.value("file", ""));
          arr.push_back(j);
        }
      }
      if (l->json) {
        std::printf("%s\n", dumpJson(arr, 2).c_str());
        return 0;
      }
      std::vector<std::vector<std::string>> rows{{"NODE", "DISK", "SIZE", "STATE", "FILE", "NQN"}};
      for (const auto& d : arr) {
        std::string state = d.value("state", "-");
        // A mirrored disk: the nexus's state and each replica's.
        if (d.contains("nexus") && d["nexus"].is_object()) {
          const json& nx = d["nexus"];
          state = nx.value("state", "-");
          std::string reps;
          if (nx.contains("replicas") && nx["replicas"].is_array()) {
            for (const auto& r : nx["replicas"]) {
              reps += reps.empty() ? " (" : ", ";
              reps += r.value("state", "?");
              if (r.contains("rebuild") && r["rebuild"].is_object() && r["rebuild"].value("total_bytes", 0ULL) > 0) {
                reps += " " +
                        std::to_string(100 * r["rebuild"].value("done_bytes", 0ULL) /
                                       r["rebuild"].value("total_bytes", 1ULL)) +
                        "%";
              }
            }
          }
          state += reps.empty() ? "" : reps + ")";
        }
        rows.push_back({d.value("node", ""), d.value("name", ""), humanBytes(d.value("size_bytes", 0ULL)), state,
                        d.value("file", ""), d.value("nqn", "")});
      }
      std::printf("%s", renderTable(rows).c_str());
      return 0;
    };
  });
}

}  // namespace offcore
