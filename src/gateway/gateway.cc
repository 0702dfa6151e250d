#include "gateway/gateway.h"

#include <signal.h>
#include <sys/signalfd.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "base/crc32c.h"
#include "base/files.h"
#include "base/json.h"
#include "base/log.h"
#include "base/subprocess.h"
#include "gateway/requests.h"

namespace offcore {

using nlohmann::json;

namespace {

// Stable identifiers derived from the NQN: the same volume keeps its serial
// and NGUID across gateway restarts, so hosts recognise their disk.
std::array<uint8_t, 16> nguidFor(const std::string& nqn) {
  std::array<uint8_t, 16> id{};
  for (int i = 0; i < 4; ++i) {
    std::string salted = nqn + "#" + std::to_string(i);
    uint32_t c = offcore::crc32c(0, reinterpret_cast<const uint8_t*>(salted.data()), salted.size());
    nvme::putLe32(id.data() + 4 * i, c);
  }
  return id;
}

std::string serialFor(const std::string& nqn) {
  auto id = nguidFor(nqn);
  char buf[21];
  std::snprintf(buf, sizeof buf, "OC%02X%02X%02X%02X%02X%02X%02X%02X%01X", id[0], id[1], id[2], id[3], id[4], id[5],
                id[6], id[7], id[8] & 0xF);
  return buf;
}

ApiResponse errorFor(const Error& e) {
  int status = 400;
  if (e.code == ENOENT)
    status = 404;
  else if (e.code == EEXIST || e.code == EBUSY)
    status = 409;
  else if (e.code == ENOSPC)
    status = 507;
  return ApiResponse::error(status, e.message);
}

}  // namespace

std::string volumeNqn(const std::string& gateway, const std::string& volume) {
  return "nqn.2026-11.io.offcore:" + gateway + ":" + volume;
}

namespace {

// The pid of the live gateway that owns `dir`, or 0 when none does.
pid_t liveOwner(const std::string& dir) {
  auto text = readFile(dir + "/target.json");
  if (!text.ok()) return unixSocketAnswers(dir + "/api.sock") ? -1 : 0;  // starting up, or long dead
  auto doc = json::parse(*text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return 0;
  pid_t pid = doc.value("pid", 0);
  uint64_t ticks = doc.value("start_ticks", 0ULL);
  if (pid <= 0) return 0;
  uint64_t now = processStartTicks(pid);
  if (now == 0 || (ticks != 0 && now != ticks)) return 0;  // gone, or the pid was reused
  return pid;
}

}  // namespace

Status sweepGatewayRunDirs(const std::string& run_root, const std::string& self) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(run_root + "/targets", ec)) {
    if (!e.is_directory()) continue;
    std::string name = e.path().filename().string();
    pid_t owner = liveOwner(e.path().string());
    if (owner == 0) {
      spdlog::info("removing the run directory of gateway '{}': its process is gone", name);
      OC_TRY(removeTree(e.path().string()));
      continue;
    }
    if (name == self && owner != ::getpid()) {
      return makeError("gateway '" + name + "' already runs" +
                       (owner > 0 ? " (pid " + std::to_string(owner) + ")" : "") +
                       "; stop it first or choose another --name");
    }
  }
  return okStatus();
}

StorageGateway::StorageGateway(GatewayConfig config) : config_(std::move(config)) {}

StorageGateway::~StorageGateway() {
  api_.reset();
  if (target_) target_->stop();
  if (signal_fd_ >= 0) ::close(signal_fd_);
  // ApiServer's destructor removed the socket; the directory goes with it.
  std::string dir = config_.run_root + "/targets/" + config_.name;
  ::unlink((dir + "/target.json").c_str());
  ::rmdir(dir.c_str());
}

std::string StorageGateway::apiSocket() const { return gatewaySocketPath(config_.run_root, config_.name); }

Status StorageGateway::exportVolume(const std::string& name) {
  OC_ASSIGN_OR_RETURN(VolumeInfo info, store_->info(name));
  OC_ASSIGN_OR_RETURN(std::shared_ptr<BlockDevice> dev, store_->openVolume(name));
  std::string nqn = volumeNqn(config_.name, name);
  nvme::Namespace ns;
  ns.nsid = 1;
  ns.device = std::move(dev);
  ns.nguid = nguidFor(nqn);
  ns.read_only = info.read_only;
  auto sub =
      std::make_shared<nvme::Subsystem>(nqn, serialFor(nqn), std::vector<nvme::Namespace>{ns}, info.allowed_hosts);
  OC_ASSIGN_OR_RETURN(auto secrets, gateway::toTargetSecrets(secrets_->forVolume(name)));
  sub->setHostSecrets(std::move(secrets));
  registry_->add(std::move(sub));
  return okStatus();
}

Status StorageGateway::applyHostAccess(const std::string& name, const std::vector<std::string>& hosts) {
  OC_ASSIGN_OR_RETURN(auto secrets, gateway::toTargetSecrets(secrets_->forVolume(name)));
  if (auto sub = registry_->find(volumeNqn(config_.name, name))) {
    // Secrets first: a host newly required to authenticate is never let in by NQN alone.
    sub->setHostSecrets(std::move(secrets));
    sub->setAllowedHosts(hosts);
  }
  return okStatus();
}

void StorageGateway::unexportVolume(const std::string& name) {
  std::string nqn = volumeNqn(config_.name, name);
  target_->disconnectSubsystem(nqn);
  registry_->remove(nqn);
}

std::string StorageGateway::volumeJson(const VolumeInfo& v, const std::vector<gateway::NewSecret>& created) const {
  std::string nqn = volumeNqn(config_.name, v.name);
  // How each allowed host proves itself; never the secrets themselves.
  json hosts = json::array();
  auto secrets = secrets_->forVolume(v.name);
  for (const auto& h : v.allowed_hosts) {
    auto it = secrets.find(h);
    bool chap = it != secrets.end();
    hosts.push_back({{"nqn", h},
                     {"auth", chap ? "DH-HMAC-CHAP" : "NQN only"},
                     {"bidirectional", chap && !it->second.ctrl_secret.empty()}});
  }
  json j{{"name", v.name},
         {"nqn", nqn},
         {"size_bytes", v.size_bytes},
         {"allocated_bytes", v.allocated_bytes},
         {"read_only", v.read_only},
         {"parent", v.parent ? json(*v.parent) : json(nullptr)},
         {"clones", v.clones},
         {"allowed_hosts", v.allowed_hosts},
         {"hosts", hosts},
         {"controllers", target_->connectionsFor(nqn)},
         {"uri", "nvme-tcp://" + config_.listen_addr + ":" + std::to_string(target_->port()) + "/" + nqn}};
  if (!created.empty()) {
    // Shown once: the reply to the request that made them.
    json shown = json::array();
    for (const auto& c : created) {
      json e{{"nqn", c.nqn}};
      if (!c.secret.empty()) e["dhchap_secret"] = c.secret;
      if (!c.ctrl_secret.empty()) e["dhchap_ctrl_secret"] = c.ctrl_secret;
      shown.push_back(e);
    }
    j["new_secrets"] = shown;
  }
  return dumpJson(j);
}

void StorageGateway::registerRoutes() {
  api_->route("GET", "/v1/target", [this](const ApiRequest&) {
    auto st = store_->stats();
    json ctrls = json::array();
    for (const auto& c : target_->controllers()) {
      ctrls.push_back({{"cntlid", c.cntlid}, {"subnqn", c.subnqn}, {"hostnqn", c.hostnqn}, {"io_queues", c.io_queues}});
    }
    json j{{"name", config_.name},     {"listen", config_.listen_addr},       {"port", target_->port()},
           {"data", config_.data_dir}, {"capacity_bytes", st.capacity_bytes}, {"allocated_bytes", st.allocated_bytes},
           {"volumes", st.volumes},    {"reads_mapped", st.reads_mapped},     {"controllers", ctrls}};
    // What one more volume could take: the pool's limit left, bounded by
    // the file system under the data (thin volumes share both).
    struct statvfs fs {};
    if (::statvfs(config_.data_dir.c_str(), &fs) == 0) {
      uint64_t fs_free = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
      uint64_t left = st.capacity_bytes > st.allocated_bytes ? st.capacity_bytes - st.allocated_bytes : 0;
      j["free_bytes"] = st.capacity_bytes > 0 ? std::min(left, fs_free) : fs_free;
    }
    return ApiResponse::json(200, dumpJson(j) + "\n");
  });
  api_->route("GET", "/v1/volumes", [this](const ApiRequest&) {
    std::string out = "[";
    bool first = true;
    for (const auto& v : store_->list()) {
      out += (first ? "" : ",") + volumeJson(v);
      first = false;
    }
    return ApiResponse::json(200, out + "]\n");
  });
  api_->route("GET", "/v1/volumes/", [this](const ApiRequest& req) {
    auto v = store_->info(req.tail);
    if (!v.ok()) return errorFor(v.error());
    return ApiResponse::json(200, volumeJson(*v) + "\n");
  });
  api_->route("POST", "/v1/volumes", [this](const ApiRequest& req) {
    // All or nothing: the body is parsed whole first, and a volume whose
    // access list or export fails is removed again.
    auto r = gateway::parseCreateVolume(req.body);
    if (!r.ok()) return ApiResponse::error(400, r.error().message);
    std::vector<gateway::NewSecret> created;
    gateway::VolumeSecrets secrets;
    if (r->allowed_hosts) {
      auto resolved = gateway::resolveHostSecrets(*r->allowed_hosts, r->host_auth, {}, {}, &created);
      if (!resolved.ok()) return ApiResponse::error(400, resolved.error().message);
      secrets = std::move(*resolved);
    }
    if (auto s = store_->create(r->name, r->size_bytes); !s.ok()) return errorFor(s.error());
    Status done = okStatus();
    if (r->allowed_hosts) done = store_->setAllowedHosts(r->name, *r->allowed_hosts);
    if (done.ok()) done = secrets_->setVolume(r->name, secrets);
    if (done.ok()) done = exportVolume(r->name);
    if (!done.ok()) {
      unexportVolume(r->name);
      (void)secrets_->setVolume(r->name, {});
      if (auto undo = store_->remove(r->name); !undo.ok()) {
        spdlog::error("gateway {}: volume {} half made and not removed: {}", config_.name, r->name,
                      undo.error().message);
      }
      return errorFor(done.error());
    }
    return ApiResponse::json(201, volumeJson(*store_->info(r->name), created) + "\n");
  });
  api_->route("DELETE", "/v1/volumes/", [this](const ApiRequest& req) {
    std::string name = req.tail;
    auto info = store_->info(name);
    if (!info.ok()) return errorFor(info.error());
    if (!info->clones.empty()) {
      std::string list;
      for (const auto& c : info->clones) list += (list.empty() ? "" : ", ") + c;
      return ApiResponse::error(409, "'" + name + "' has clones: " + list + "; delete them first");
    }
    int attached = target_->connectionsFor(volumeNqn(config_.name, name));
    bool force = req.query.count("force") && req.query.at("force") == "true";
    if (attached > 0 && !force) {
      return ApiResponse::error(409, "'" + name + "' is attached by " + std::to_string(attached) +
                                         " host(s); detach it first or delete with --force");
    }
    unexportVolume(name);
    if (auto s = store_->remove(name); !s.ok()) {
      if (auto back = exportVolume(name); !back.ok()) {
        spdlog::error("gateway {}: volume {} was not removed and could not be exported again: {}", config_.name, name,
                      back.error().message);
      }
      return errorFor(s.error());
    }
    if (auto s = secrets_->setVolume(name, {}); !s.ok()) {
      spdlog::warn("gateway {}: volume {} removed but its secrets stay in {}: {}", config_.name, name, secrets_->path(),
                   s.error().message);
    }
    return ApiResponse::json(200, "{\"ok\":true}\n");
  });
  api_->route("POST", "/v1/volumes/", [this](const ApiRequest& req) {
    // /v1/volumes/NAME/{snapshot,clone,resize,hosts}
    auto slash = req.tail.find('/');
    if (slash == std::string::npos) return ApiResponse::error(404, "use /v1/volumes/NAME/ACTION");
    std::string name = req.tail.substr(0, slash), action = req.tail.substr(slash + 1);
    if (action == "snapshot" || action == "clone") {
      auto r = gateway::parseDerivedVolume(req.body);
      if (!r.ok()) return ApiResponse::error(400, r.error().message);
      Status s = action == "snapshot" ? store_->snapshot(name, r->name) : store_->clone(name, r->name);
      if (!s.ok()) return errorFor(s.error());
      // The access list is in place before the volume is exported, so no
      // host can connect in between. A clone whose list fails is removed; a
      // snapshot cannot be (its source is now its clone) and stays unexported.
      Status done = r->allowed_hosts ? store_->setAllowedHosts(r->name, *r->allowed_hosts) : okStatus();
      if (!done.ok()) {
        if (action == "clone") (void)store_->remove(r->name);
        return errorFor(done.error());
      }
      if (auto e = exportVolume(r->name); !e.ok()) return errorFor(e.error());
      return ApiResponse::json(201, volumeJson(*store_->info(r->name)) + "\n");
    }
    if (action == "resize") {
      auto size = gateway::parseResizeRequest(req.body);
      if (!size.ok()) return ApiResponse::error(400, size.error().message);
      if (auto s = store_->resize(name, *size); !s.ok()) return errorFor(s.error());
      target_->notifyNamespaceChanged(volumeNqn(config_.name, name), 1);
      return ApiResponse::json(200, volumeJson(*store_->info(name)) + "\n");
    }
    if (action == "hosts") {
      auto hosts = gateway::parseHostsRequest(req.body);
      if (!hosts.ok()) return ApiResponse::error(400, hosts.error().message);
      auto info = store_->info(name);
      if (!info.ok()) return errorFor(info.error());
      std::vector<gateway::NewSecret> created;
      auto secrets = gateway::resolveHostSecrets(hosts->hosts, hosts->host_auth, info->allowed_hosts,
                                                 secrets_->forVolume(name), &created);
      if (!secrets.ok()) return ApiResponse::error(400, secrets.error().message);
      auto before = secrets_->forVolume(name);
      if (auto s = secrets_->setVolume(name, *secrets); !s.ok()) return errorFor(s.error());
      if (auto s = store_->setAllowedHosts(name, hosts->hosts); !s.ok()) {
        (void)secrets_->setVolume(name, before);
        return errorFor(s.error());
      }
      if (auto s = applyHostAccess(name, hosts->hosts); !s.ok()) return errorFor(s.error());
      return ApiResponse::json(200, volumeJson(*store_->info(name), created) + "\n");
    }
    return ApiResponse::error(404, "unknown volume action '" + action + "' (snapshot, clone, resize, hosts)");
  });
}

Status StorageGateway::start() {
  // Block the stop signals before any thread starts, so every poll group
  // inherits the mask and only the signalfd sees them.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  ::pthread_sigmask(SIG_BLOCK, &mask, nullptr);
  signal_fd_ = ::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  if (signal_fd_ < 0) return errnoError("signalfd");
  OC_TRY(loop_.init());
  OC_TRY(sweepGatewayRunDirs(config_.run_root, config_.name));
  OC_TRY(makePrivateDir(config_.data_dir));
  OC_ASSIGN_OR_RETURN(store_, VolumeStore::open(config_.data_dir, config_.capacity_bytes));
  secrets_ = std::make_unique<gateway::HostSecretFile>(config_.data_dir + "/dhchap-secrets.json");
  OC_TRY(secrets_->load());
  registry_ = std::make_shared<nvme::SubsystemRegistry>();
  for (const auto& v : store_->list()) OC_TRY(exportVolume(v.name));
  nvme::TargetConfig tc;
  tc.listen_addr = config_.listen_addr;
  tc.port = config_.port;
  tc.poll_groups = config_.poll_groups;
  tc.busy_poll = config_.busy_poll;
  target_ = std::make_unique<nvme::NvmeTcpTarget>(tc, registry_);
  OC_TRY(target_->start());

  std::string dir = config_.run_root + "/targets/" + config_.name;
  OC_TRY(makePrivateDir(dir));
  // target.json first: from then on a sweep by another process sees a live owner.
  json info{{"name", config_.name},    {"listen", config_.listen_addr},
            {"port", target_->port()}, {"data", config_.data_dir},
            {"pid", ::getpid()},       {"start_ticks", processStartTicks(::getpid())}};
  OC_TRY(writeFileAtomic(dir + "/target.json", dumpJson(info, 2) + "\n"));
  api_ = std::make_unique<ApiServer>(loop_);
  registerRoutes();
  OC_TRY(api_->listenUnix(apiSocket()));
  spdlog::info("gateway {}: {} volumes, NVMe/TCP on {}:{}, API {}", config_.name, store_->list().size(),
               config_.listen_addr, target_->port(), apiSocket());
  return okStatus();
}

Status StorageGateway::run() {
  OC_TRY(loop_.watchFd(signal_fd_, EPOLLIN, [this](uint32_t) { loop_.stop(); }));
  Status s = loop_.run();
  target_->stop();
  // The store checkpoints when it closes (in ~StorageGateway), and only if
  // its journal holds anything: a second checkpoint here doubled the fsyncs
  // a stop waits for.
  return s;
}

}  // namespace offcore
