// `offcore mesh serve --node N`: the node's mesh keeper, the agent's
// supervised service "mesh" in the SoC domain (`offcore mesh up`). It owns
// what must outlive one proxy process: the interception rules and the
// listening sockets. The proxy itself runs as a child, one epoch at a time
// (`offcore mesh worker`, mesh_serve.cc), inheriting the sockets:
//   - a worker that dies is replaced at once (new connections work again
//     within milliseconds; the dead one's connections are lost);
//   - SIGHUP (`offcore mesh restart`) is a hot restart or upgrade: a new
//     epoch, from the binary now on disk, starts on the same sockets; once
//     it answers, the old one stops accepting, drains its connections and
//     exits. The kernel's accept queue is shared, so no connection is
//     refused or reset in between;
//   - SIGTERM stops the worker (it drains) and then the keeper.
// It also holds the cluster's mesh CA: the worker, which handles hostile
// traffic, never opens it. Each epoch gets its own end of a socketpair (the
// CA channel, `ca=N` in --fds) over which it sends CSRs; the keeper signs
// only identities of this node's mesh pods (mesh/tls/ca_service.h). The
// keeper is not dumpable, so a worker without CAP_SYS_PTRACE cannot read
// its memory or its /proc/<pid>/root.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <map>
#include <memory>
#include <set>

#include "api/api_client.h"
#include "base/event_loop.h"
#include "base/files.h"
#include "base/json.h"
#include "base/subprocess.h"
#include "cli/mesh_node.h"
#include "dpu/layout.h"
#include "dpu/node_state.h"
#include "kv/etcd_client.h"
#include "kv/etcd_config.h"
#include "mesh/proxy/interception.h"
#include "mesh/proxy/workloads.h"
#include "mesh/tls/ca.h"
#include "mesh/tls/ca_service.h"
#include "svc/cluster_store.h"
#include "svc/state_storage.h"

namespace offcore {

namespace {

using nlohmann::json;

constexpr std::chrono::milliseconds kReadyTimeout{10000};

// A bound, listening socket on ip:port, IP_TRANSPARENT for TPROXY targets
// (CLOEXEC: only the worker's copy is made inheritable, in the child).
Result<int> listenOn(const std::string& ip, uint16_t port, bool transparent) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return errnoError("socket");
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (transparent && ::setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof one) != 0) {
    ::close(fd);
    return errnoError("IP_TRANSPARENT (needs CAP_NET_ADMIN)");
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  if (::inet_pton(AF_INET, ip.c_str(), &a.sin_addr) != 1) {
    ::close(fd);
    return makeError("not an IPv4 address: " + ip);
  }
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 4096) != 0) {
    Error e = errnoError("listen on " + ip + ":" + std::to_string(port));
    ::close(fd);
    return e;
  }
  return fd;
}

class Keeper {
 public:
  Keeper(const CliContext& ctx, std::string node)
      : node_(std::move(node)),
        exe_(selfExe()),
        cluster_dir_(ctx.config.cluster_dir),
        config_(ctx.config),
        state_(svc::openStateStorageOrUnusable(ctx.config)) {
    layout_ = NodeLayout::forNode(ctx.config, node_);
  }

  int run() {
    // Before the CA key is in memory: no core dump, no ptrace or /proc
    // access for anything that lacks CAP_SYS_PTRACE (the workers).
    if (::prctl(PR_SET_DUMPABLE, 0) != 0) return fail("mesh serve", errnoError("PR_SET_DUMPABLE"));
    sigset_t mask;
    sigemptyset(&mask);
    for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&mask, sig);
    ::pthread_sigmask(SIG_BLOCK, &mask, nullptr);
    // The binary path now, so an upgrade (a new file at the same path) runs the new one.
    if (exe_.size() > 10 && exe_.substr(exe_.size() - 10) == " (deleted)") exe_.resize(exe_.size() - 10);

    mesh::InterceptionPorts ports;
    if (auto s = mesh::installInterception("", ports, layout_.uplink_soc_if); !s.ok()) {
      return fail("mesh serve", s.error().wrap("interception"));
    }
    for (auto [name, port] : {std::pair{"outbound", ports.outbound}, std::pair{"inbound", ports.inbound}}) {
      auto fd = listenOn("0.0.0.0", port, true);
      if (!fd.ok()) return fail("mesh serve", fd.error());
      fds_[name] = *fd;
    }
    // HBONE: on the node's fabric address only.
    auto state = loadNodeState(layout_.state_file);
    if (!state.ok()) return fail("mesh serve", state.error());
    std::string fabric_ip = state->uplink_ip.substr(0, state->uplink_ip.find('/'));
    auto hfd = listenOn(fabric_ip, ports.hbone, false);
    if (!hfd.ok()) return fail("mesh serve", hfd.error());
    fds_["hbone"] = *hfd;
    // Prometheus metrics, SoC-local.
    auto mfd = listenOn("127.0.0.1", ports.metrics, false);
    if (!mfd.ok()) return fail("mesh serve", mfd.error());
    fds_["metrics"] = *mfd;
    if (auto s = loop_.init(); !s.ok()) return fail("mesh serve", s.error());
    if (auto s = startCa(); !s.ok()) return fail("mesh serve", s.error());
    int sfd = ::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0) return fail("mesh serve", errnoError("signalfd"));
    (void)loop_.watchFd(sfd, EPOLLIN, [this, sfd](uint32_t) {
      signalfd_siginfo info;
      while (::read(sfd, &info, sizeof info) == sizeof info) onSignal(static_cast<int>(info.ssi_signo));
    });
    if (auto s = startEpoch(); !s.ok()) return fail("mesh serve", s.error());
    auto ran = loop_.run();
    ::close(sfd);
    for (auto& [name, fd] : fds_) ::close(fd);
    return ran.ok() ? 0 : fail("mesh serve", ran.error());
  }

 private:
  struct Worker {
    int epoch = 0;
    int pidfd = -1;
    std::unique_ptr<mesh::tls::CaChannel> ca;
  };

  // Where the cluster's mesh CA lives: with the cluster state in etcd, one
  // key there (every machine's keepers sign with one CA), read as the mesh
  // CA's own etcd user when the config names one (the worker, which talks
  // to etcd as the node, cannot read it then); else the cluster directory.
  Result<std::unique_ptr<mesh::tls::CaStore>> openCaStore() const {
    if (!kv::isEtcdUrl(config_.cluster_store)) return mesh::tls::makeDirCaStore(cluster_dir_ + "/mesh/ca");
    Config c = config_;
    if (!c.mesh_ca_etcd_user.empty()) {
      c.etcd_user = c.mesh_ca_etcd_user;
      c.etcd_password_file = c.mesh_ca_etcd_password_file;
    } else {
      spdlog::warn(
          "mesh CA: in etcd ({}) and read with the node's own etcd credentials, which the proxy worker has too; "
          "set mesh_ca_etcd_user and mesh_ca_etcd_password_file (docs/ETCD.md, \"The mesh CA\")",
          mesh::tls::kMeshCaKey);
    }
    OC_ASSIGN_OR_RETURN(auto options, kv::etcdOptionsFor(c, c.cluster_store));
    auto store = mesh::tls::makeKvCaStore(std::shared_ptr<kv::KvClient>(kv::makeEtcdClient(std::move(options))));
    // A cluster moving onto etcd keeps the CA its directory had (the first
    // keeper's wins), so certificates signed before stay trusted.
    OC_ASSIGN_OR_RETURN(auto in_etcd, store->load());
    if (!in_etcd) {
      auto dir_store = mesh::tls::makeDirCaStore(cluster_dir_ + "/mesh/ca");
      OC_ASSIGN_OR_RETURN(auto in_dir, dir_store->load());
      if (in_dir) {
        auto copied = store->createOrLoad(*in_dir);
        if (!copied.ok()) return copied.error();
        spdlog::warn("mesh CA: {}'s CA copied into {} (etcd holds it now)", dir_store->location(), store->location());
      }
    }
    return std::unique_ptr<mesh::tls::CaStore>(std::move(store));
  }

  // The CA (created on first use), the settings it signs with, and the
  // directories the worker's read-only view needs to find in place.
  Status startCa() {
    OC_ASSIGN_OR_RETURN(MeshNodeSettings settings, readMeshSettings(layout_.mesh_file));
    for (const std::string& dir : {cluster_dir_ + "/health", cluster_dir_ + "/mesh"}) OC_TRY(makeDirs(dir));
    // The worker's sandbox covers this directory whichever store holds the CA.
    OC_TRY(makePrivateDir(cluster_dir_ + "/mesh/ca"));
    OC_ASSIGN_OR_RETURN(auto ca_store, openCaStore());
    OC_ASSIGN_OR_RETURN(ca_, mesh::tls::Ca::loadOrCreate(*ca_store, settings.trust_domain));
    spdlog::info("mesh CA for {} from {}", settings.trust_domain, ca_store->location());
    std::string td = settings.trust_domain;
    ca_service_ = std::make_unique<mesh::tls::CaService>(
        *ca_, node_, mesh::tls::Seconds(settings.cert_ttl_s),
        [state_storage = state_, node = node_, td]() -> Result<std::set<std::string>> {
          OC_ASSIGN_OR_RETURN(auto state, state_storage->load());
          return mesh::meshIdentitiesOnNode(state, node, td);
        });
    return okStatus();
  }

  Status startEpoch() {
    int epoch = ++epoch_;
    // The epoch's CA channel: the worker's end goes to the child only.
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) return errnoError("CA channel socketpair");
    auto ca = std::make_unique<mesh::tls::CaChannel>(loop_, *ca_service_, pair[0], [epoch](const std::string& why) {
      spdlog::warn("mesh epoch {}: CA channel closed ({})", epoch, why);
    });
    if (auto s = ca->start(); !s.ok()) {
      ::close(pair[1]);
      return s;
    }
    std::string fd_arg = "ca=" + std::to_string(pair[1]);
    for (const auto& [name, fd] : fds_) fd_arg += "," + name + "=" + std::to_string(fd);
    SpawnOptions o;
    o.output_file = layout_.run_dir + "/mesh.log";
    std::vector<int> keep{pair[1]};
    for (const auto& [name, fd] : fds_) keep.push_back(fd);
    o.in_child = [keep]() -> Status {
      // The proxy never outlives its keeper: a new keeper must be able to bind.
      if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) return errnoError("PR_SET_PDEATHSIG");
      for (int fd : keep) {
        if (::fcntl(fd, F_SETFD, 0) != 0) return errnoError("keep listener fd");
      }
      return okStatus();
    };
    auto pid = spawn({exe_, "mesh", "worker", "--node", node_, "--epoch", std::to_string(epoch), "--fds", fd_arg}, o);
    ::close(pair[1]);
    if (!pid.ok()) return pid.error();
    int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, *pid, 0));
    if (pidfd < 0) return errnoError("pidfd_open");
    workers_[*pid] = Worker{epoch, pidfd, std::move(ca)};
    pid_t pid_v = *pid;
    OC_TRY(loop_.watchFd(pidfd, EPOLLIN, [this, pid_v](uint32_t) { reaped(pid_v); }));
    spdlog::info("mesh epoch {} started (pid {})", epoch, pid_v);
    return okStatus();
  }

  void reaped(pid_t pid) {
    auto it = workers_.find(pid);
    if (it == workers_.end()) return;
    int status = 0;
    ::waitpid(pid, &status, 0);
    loop_.unwatchFd(it->second.pidfd);
    ::close(it->second.pidfd);
    int epoch = it->second.epoch;
    workers_.erase(it);
    spdlog::info("mesh epoch {} (pid {}) exited with status {}", epoch, pid, status);
    if (stopping_) {
      if (workers_.empty()) loop_.stop();
      return;
    }
    // The current epoch died on its own: replace it now (a restart loop is
    // slowed down, not stopped; the agent sees the keeper alive).
    if (epoch == epoch_) {
      auto since = std::chrono::steady_clock::now() - last_crash_;
      last_crash_ = std::chrono::steady_clock::now();
      auto delay = since < std::chrono::seconds(1) ? std::chrono::milliseconds(500) : std::chrono::milliseconds(0);
      loop_.addTimer(delay, [this] {
        if (auto s = startEpoch(); !s.ok()) spdlog::error("mesh: restart failed: {}", s.error().message);
      });
    }
  }

  void onSignal(int sig) {
    if (sig == SIGHUP) return hotRestart();
    spdlog::info("signal {}: stopping {} proxy epoch(s)", sig, workers_.size());
    stopping_ = true;
    for (const auto& [pid, w] : workers_) ::kill(pid, SIGTERM);
    if (workers_.empty()) loop_.stop();
  }

  // New epoch first; the old ones stop accepting only once it answers.
  void hotRestart() {
    if (stopping_) return;
    std::vector<pid_t> old;
    for (const auto& [pid, w] : workers_) old.push_back(pid);
    if (auto s = startEpoch(); !s.ok()) {
      spdlog::error("mesh: hot restart failed, keeping epoch {}: {}", epoch_ - 1, s.error().message);
      return;
    }
    auto deadline = std::chrono::steady_clock::now() + kReadyTimeout;
    waitReady(epoch_, old, deadline);
  }

  void waitReady(int epoch, std::vector<pid_t> old, std::chrono::steady_clock::time_point deadline) {
    ApiClient proxy(layout_.run_dir + "/mesh.sock", 200);
    auto body = proxy.call("GET", "/v1/mesh/status");
    auto j = json::parse(body.valueOr("{}"), nullptr, false);
    if (!j.is_discarded() && j.value("epoch", 0) == epoch) {
      for (pid_t pid : old) {
        if (workers_.count(pid)) ::kill(pid, SIGTERM);  // it drains and exits
      }
      spdlog::info("mesh epoch {} ready; {} old epoch(s) draining", epoch, old.size());
      return;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      spdlog::error("mesh epoch {} did not answer in time; keeping the old one", epoch);
      for (const auto& [pid, w] : workers_) {
        if (w.epoch == epoch) ::kill(pid, SIGKILL);
      }
      return;
    }
    loop_.addTimer(std::chrono::milliseconds(20), [this, epoch, old, deadline] { waitReady(epoch, old, deadline); });
  }

  std::string node_, exe_, cluster_dir_;  // cluster_dir_: the mesh CA's home unless the state is in etcd
  Config config_;
  std::shared_ptr<svc::StateStorage> state_;  // who runs on this node, for the CA's checks
  NodeLayout layout_;
  std::unique_ptr<mesh::tls::Ca> ca_;
  std::unique_ptr<mesh::tls::CaService> ca_service_;
  EventLoop loop_;
  std::map<std::string, int> fds_;
  std::map<pid_t, Worker> workers_;
  int epoch_ = 0;
  bool stopping_ = false;
  std::chrono::steady_clock::time_point last_crash_{};
};

}  // namespace

int serveMesh(const CliContext& ctx, const std::string& node) { return Keeper(ctx, node).run(); }

}  // namespace offcore
