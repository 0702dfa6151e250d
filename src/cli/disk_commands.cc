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

struct DiskUri {
  std::string address;
  uint16_t port = 4420;
  std::string nqn;
};

Result<DiskUri> parseDiskUri(const std::string& uri) {
  const std::string scheme = "nvme-tcp://";
  auto bad = [&](const std::string& why) {
    return makeError("bad disk URI '" + uri + "': " + why + " (use nvme-tcp://ADDR:PORT/NQN)");
  };
  if (uri.rfind(scheme, 0) != 0) return bad("it must start with nvme-tcp://");
  std::string rest = uri.substr(scheme.size());
  auto slash = rest.find('/');
  if (slash == std::string::npos || slash + 1 >= rest.size()) return bad("no NQN after the address");
  DiskUri d;
  std::string hostport = rest.substr(0, slash);
  d.nqn = rest.substr(slash + 1);
  auto colon = hostport.rfind(':');
  d.address = colon == std::string::npos ? hostport : hostport.substr(0, colon);
  if (colon != std::string::npos) {
    std::string port = hostport.substr(colon + 1);
    if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
        std::stoi(port) > 65535) {
      return bad("bad port");
    }
    d.port = static_cast<uint16_t>(std::stoi(port));
  }
  if (d.nqn.size() > 223) return bad("the NQN is longer than 223 bytes");
  return d;
}

std::string disksDir(const CliContext& ctx, const std::string& node) {
  return ctx.config.run_root + "/" + node + "/disks";
}
// The node keeps each disk's DH-HMAC-CHAP secrets here (0700 dir, 0600
// files), never on a command line: argv is world-readable in /proc.
std::string secretsDir(const CliContext& ctx, const std::string& node) {
  return ctx.config.run_root + "/" + node + "/secrets";
}

struct DiskSecrets {
  std::string secret;       // DHHC-1 text; empty: no authentication
  std::string ctrl_secret;  // DHHC-1 text; empty: the target is not authenticated
};

// A secret file: "dhchap_secret=DHHC-1:..:" and optionally
// "dhchap_ctrl_secret=DHHC-1:..:" lines, or a bare secret on the first line.
// It must not be readable by group or others.
Result<DiskSecrets> readSecretFile(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return errnoError("secret file " + path);
  if (st.st_mode & 077) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
    return makeError("secret file " + path + " has mode " + mode + "; make it private first: chmod 600 " + path);
  }
  OC_ASSIGN_OR_RETURN(std::string text, readFile(path));
  DiskSecrets out;
  for (const auto& raw : splitLines(text)) {
    std::string line = raw;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    if (line.rfind("dhchap_secret=", 0) == 0) {
      out.secret = line.substr(14);
    } else if (line.rfind("dhchap_ctrl_secret=", 0) == 0) {
      out.ctrl_secret = line.substr(19);
    } else if (line.rfind("DHHC-1:", 0) == 0 && out.secret.empty()) {
      out.secret = line;
    } else {
      return makeError("secret file " + path + ": unknown line (use dhchap_secret=... and dhchap_ctrl_secret=...)");
    }
  }
  if (out.secret.empty()) return makeError("secret file " + path + " holds no dhchap_secret");
  return out;
}

// Parses both secrets, so a typo fails at attach rather than in the SoC.
Status checkSecrets(const DiskSecrets& s) {
  if (!s.secret.empty()) {
    auto k = nvme::auth::parseDhchapKey(s.secret);
    if (!k.ok()) return k.error().wrap("--dhchap-secret");
  }
  if (!s.ctrl_secret.empty()) {
    if (s.secret.empty()) return makeError("--dhchap-ctrl-secret needs --dhchap-secret too");
    auto k = nvme::auth::parseDhchapKey(s.ctrl_secret);
    if (!k.ok()) return k.error().wrap("--dhchap-ctrl-secret");
  }
  return okStatus();
}

// The node's keeper of disk FUSE connections (agent service "disks-fds").
std::string diskKeeper(const CliContext& ctx, const std::string& node) {
  return fdKeeperSocket(ctx.config.run_root, node, "disks");
}
std::string keptName(const std::string& file) { return "disk-" + file.substr(file.rfind('/') + 1); }

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

// How long a disk waits for a lost gateway: io_timeout bounds one request,
// fast_io_fail (after the loss) makes waiting and new I/O fail at once,
// ctrl_loss ends reconnecting. Seconds; -1: off.
struct DiskTimeouts {
  int io = 30, fast_io_fail = 5, ctrl_loss = 600;
};

Status checkTimeouts(const DiskTimeouts& t) {
  if (t.io < 1) return makeError("--io-timeout must be at least 1 second");
  if (t.fast_io_fail < -1) return makeError("--fast-io-fail is seconds, or -1 for off");
  if (t.ctrl_loss < -1) return makeError("--ctrl-loss-timeout is seconds, or -1 to reconnect for ever");
  return okStatus();
}

std::chrono::milliseconds secondsOrOff(int s) { return std::chrono::milliseconds(s < 0 ? -1 : s * 1000LL); }

int serveDisk(const CliContext& ctx, const std::string& uri, const std::string& file, const std::string& node,
              int queues, int depth, const DiskTimeouts& timeouts, const std::string& secret_file) {
  auto d = parseDiskUri(uri);
  if (!d.ok()) return fail("disk serve", d.error());
  std::optional<nvme::auth::DhchapKey> secret, ctrl_secret;
  if (!secret_file.empty()) {
    auto s = readSecretFile(secret_file);
    if (!s.ok()) return fail("disk serve", s.error());
    auto k = nvme::auth::parseDhchapKey(s->secret);
    if (!k.ok()) return fail("disk serve", k.error().wrap(secret_file));
    secret = std::move(*k);
    if (!s->ctrl_secret.empty()) {
      auto c = nvme::auth::parseDhchapKey(s->ctrl_secret);
      if (!c.ok()) return fail("disk serve", c.error().wrap(secret_file));
      ctrl_secret = std::move(*c);
    }
  }
  // Stop signals go to the signalfd only: block them before threads start.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  ::pthread_sigmask(SIG_BLOCK, &mask, nullptr);
  nvme::HostOptions o;
  o.host_nqn = nvme::nodeHostNqn(node);
  o.host_id = nvme::nodeHostId(node);
  o.io_queues = queues;
  o.queue_depth = static_cast<uint32_t>(depth);
  o.io_timeout = std::chrono::seconds(timeouts.io);
  o.fast_io_fail = secondsOrOff(timeouts.fast_io_fail);
  o.ctrl_loss_timeout = secondsOrOff(timeouts.ctrl_loss);
  o.dhchap_secret = secret;
  o.dhchap_ctrl_secret = ctrl_secret;
  auto host = nvme::NvmeTcpHost::connect(d->address, d->port, d->nqn, o);
  if (!host.ok()) return fail("disk serve", host.error());
  // One FUSE worker per command the queues can carry, so a deep fio or a
  // loop device with --direct-io=on keeps every queue slot busy.
  FuseDiskOptions fo;
  fo.max_threads = static_cast<unsigned>(std::clamp(queues * depth, 4, 64));
  // The connection is parked in the node's fd keeper: after a crash of this
  // process, the agent's restart adopts it and the host sees a pause.
  const std::string keeper = diskKeeper(ctx, node);
  auto kept = mountKept(keeper, keptName(file), file, *host, fo);
  if (!kept.ok()) return fail("disk serve", kept.error());
  auto* disk = &kept->disk;
  json info{{"uri", uri},
            {"nqn", d->nqn},
            {"file", file},
            {"size_bytes", (*host)->sizeBytes()},
            {"block_size", (*host)->blockSize()},
            {"host_nqn", o.host_nqn},
            {"pid", ::getpid()},
            {"adopted", kept->adopted},
            {"io_timeout_s", timeouts.io},
            {"fast_io_fail_s", timeouts.fast_io_fail},
            {"ctrl_loss_timeout_s", timeouts.ctrl_loss},
            {"state", nvme::hostStateName((*host)->state())},
            {"auth", secret ? (ctrl_secret ? "DH-HMAC-CHAP (bidirectional)" : "DH-HMAC-CHAP") : "none"}};
  // The record is how `disk list`, `disk detach` and the attaching CLI find
  // this disk: a disk without one would be served but unmanageable.
  if (auto rec = writeFileAtomic(file + ".json", dumpJson(info, 2) + "\n"); !rec.ok()) {
    releaseKept(keeper, keptName(file));
    disk->reset();
    (*host)->close();
    return fail("disk serve", rec.error().wrap("record the disk"));
  }
  std::printf("disk %s: %s (%llu bytes) via %s:%u%s\n", file.c_str(), d->nqn.c_str(),
              static_cast<unsigned long long>((*host)->sizeBytes()), d->address.c_str(), d->port,
              kept->adopted ? ", took over the connection of the previous process" : "");
  std::fflush(stdout);
  // Until stopped, the record follows the initiator's state (live,
  // reconnecting, failed), so `disk list` shows a lost path.
  auto state = (*host)->state();
  const timespec tick{0, 250 * 1000 * 1000};
  while (::sigtimedwait(&mask, nullptr, &tick) < 0) {
    if ((*host)->state() == state) continue;
    state = (*host)->state();
    info["state"] = nvme::hostStateName(state);
    if (auto w = writeFileAtomic(file + ".json", dumpJson(info, 2) + "\n"); !w.ok()) {
      spdlog::warn("disk {}: {}", file, w.error().message);
    }
  }
  releaseKept(keeper, keptName(file));  // stopped on purpose: the connection ends with us
  disk->reset();                        // unmount first, then drop the association
  (*host)->close();
  std::remove((file + ".json").c_str());
  return 0;
}

}  // namespace

void registerDiskCommands(CLI::App& app, CliContext& ctx) {
  auto* disk = app.add_subcommand("disk", "NVMe/TCP disks a node's SoC presents to its host");
  disk->require_subcommand(1);

  struct Opts {
    std::string uri, node, name, file, secret, ctrl_secret, secret_file;
    int queues = 2, depth = 32;
    DiskTimeouts timeouts;
    bool json = false, force = false;
  };
  auto a = std::make_shared<Opts>();
  auto* attach = disk->add_subcommand("attach", "attach nvme-tcp://ADDR:PORT/NQN as /run/offcore/NODE/disks/NAME");
  attach->add_option("uri", a->uri, "nvme-tcp://ADDR:PORT/NQN")->required();
  attach->add_option("--node", a->node, "the node whose SoC runs the initiator")->required();
  attach->add_option("--name", a->name, "disk name (default: the volume name)");
  attach->add_option("--queues", a->queues, "I/O queues")->capture_default_str();
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
  attach->add_option(
      "--secret-file", a->secret_file,
      "a 0600 file with dhchap_secret=... [and dhchap_ctrl_secret=...] lines (keeps secrets off the command line)");
  attach->callback([&ctx, a] {
    ctx.action = [&ctx, a] {
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
      for (int i = 0; i < 200; ++i) {
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
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
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
  serve->add_option("--queues", s->queues, "I/O queues");
  serve->add_option("--queue-depth", s->depth, "commands per queue");
  serve->add_option("--io-timeout", s->timeouts.io, "seconds");
  serve->add_option("--fast-io-fail", s->timeouts.fast_io_fail, "seconds (-1: off)");
  serve->add_option("--ctrl-loss-timeout", s->timeouts.ctrl_loss, "seconds (-1: never)");
  serve->add_option("--secret-file", s->secret_file, "DH-HMAC-CHAP secrets (0600; written by `disk attach`)");
  serve->callback([&ctx, s] {
    ctx.action = [&ctx, s] {
      if (auto st = checkTimeouts(s->timeouts); !st.ok()) return fail("disk serve", st.error());
      return serveDisk(ctx, s->uri, s->file, s->node, s->queues, s->depth, s->timeouts, s->secret_file);
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
        rows.push_back({d.value("node", ""), d.value("name", ""), humanBytes(d.value("size_bytes", 0ULL)),
                        d.value("state", "-"), d.value("file", ""), d.value("nqn", "")});
      }
      std::printf("%s", renderTable(rows).c_str());
      return 0;
    };
  });
}

}  // namespace offcore
