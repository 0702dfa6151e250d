#include "nvme/target/target.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "base/assert.h"
#include "base/log.h"
#include "nvme/target/connection.h"

namespace offcore::nvme {
namespace {

std::string fixedString(const uint8_t* p, size_t width) {
  size_t n = 0;
  while (n < width && p[n] != 0) ++n;
  return std::string(reinterpret_cast<const char*>(p), n);
}

// NQNs come from the host: control bytes are escaped so that one log line
// stays one line.
std::string printableNqn(const std::string& nqn) {
  std::string out;
  for (unsigned char ch : nqn) {
    if (ch < 0x20 || ch == 0x7F || ch == '\\') {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", ch);
      out += buf;
    } else {
      out += static_cast<char>(ch);
    }
  }
  return out;
}

ConnectOutcome invalidParameter(bool in_data, uint16_t offset) {
  Completion c = withStatus(kScConnectInvalidParameters);
  c.dw0 = (in_data ? (1u << 16) : 0u) | offset;  // IATTR, IPO
  return ConnectOutcome{c, nullptr, std::nullopt};
}

}  // namespace

std::vector<int> allowedCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> out;
  if (::sched_getaffinity(0, sizeof set, &set) != 0) return out;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &set)) out.push_back(c);
  }
  return out;
}

NvmeTcpTarget::NvmeTcpTarget(TargetConfig config, std::shared_ptr<SubsystemRegistry> registry)
    : config_(std::move(config)), registry_(std::move(registry)) {}

NvmeTcpTarget::~NvmeTcpTarget() { stop(); }

Status NvmeTcpTarget::start() {
  // The CPUs we may run on (taskset, a cpuset cgroup), not the online count:
  // two groups on one allowed core only take turns and cost 15-25%.
  std::vector<int> cpus = allowedCpus();
  int n = config_.poll_groups > 0 ? config_.poll_groups : static_cast<int>(std::max<size_t>(1, cpus.size()));
  for (int i = 0; i < n; ++i) {
    auto g = std::make_unique<PollGroup>();
    OC_TRY(g->loop.init());
    groups_.push_back(std::move(g));
  }
  sync_.start();
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return errnoError("socket");
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(config_.port);
  if (::inet_pton(AF_INET, config_.listen_addr.c_str(), &addr.sin_addr) != 1) {
    return makeError("bad listen address '" + config_.listen_addr + "' (an IPv4 address)");
  }
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return errnoError("bind " + config_.listen_addr + ":" + std::to_string(config_.port));
  }
  if (::listen(listen_fd_, 128) != 0) return errnoError("listen");
  socklen_t len = sizeof addr;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  bound_port_ = ntohs(addr.sin_port);
  OC_TRY(groups_[0]->loop.watchFd(listen_fd_, EPOLLIN, [this](uint32_t) { accept(); }));
  group_cpus_.clear();
  for (size_t i = 0; i < groups_.size(); ++i) {
    PollGroup* group = groups_[i].get();
    group->loop.setBusyPoll(config_.busy_poll);
    group->thread = std::thread([group] {
      auto s = group->loop.run();
      // run() fails only if epoll_wait itself fails: a group that stops
      // polling would hang its queues silently, so stop loudly instead.
      if (!s.ok()) OC_ASSERT(false, ("poll group loop failed: " + s.error().message).c_str());
    });
    std::string name = "nvme-poll-" + std::to_string(i);
    ::pthread_setname_np(group->thread.native_handle(), name.c_str());
    // One group per allowed CPU, each kept on its own (round-robin when
    // --poll-groups asks for more groups than CPUs).
    int cpu = cpus.empty() ? -1 : cpus[i % cpus.size()];
    if (cpu >= 0) {
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(cpu, &one);
      int rc = ::pthread_setaffinity_np(group->thread.native_handle(), sizeof one, &one);
      if (rc != 0) {
        spdlog::warn("nvme/tcp: cannot pin poll group {} to cpu {}: {}", i, cpu, std::strerror(rc));
        cpu = -1;
      }
    }
    group_cpus_.push_back(cpu);
  }
  std::string where;
  for (int c : group_cpus_) where += (where.empty() ? "" : ",") + (c >= 0 ? std::to_string(c) : std::string("any"));
  spdlog::info("nvme/tcp target listening on {}:{} with {} poll groups on cpus {} ({} cpus allowed)",
               config_.listen_addr, bound_port_, n, where, cpus.size());
  return okStatus();
}

void NvmeTcpTarget::stop() {
  for (auto& g : groups_) {
    PollGroup* group = g.get();
    group->loop.post([group] {
      auto conns = group->connections;  // close() edits the map
      for (auto& [_, c] : conns) c->close("target stopping");
      group->loop.stop();
    });
  }
  for (auto& g : groups_) {
    if (g->thread.joinable()) g->thread.join();
  }
  // Flushes still queued run now; their answers go to loops that no longer
  // run (and still exist: groups_ is cleared after).
  sync_.stop();
  groups_.clear();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  listen_fd_ = -1;
}

void NvmeTcpTarget::accept() {
  for (;;) {
    sockaddr_in peer_addr{};
    socklen_t peer_len = sizeof peer_addr;
    int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&peer_addr), &peer_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) spdlog::warn("accept: {}", std::strerror(errno));
      return;
    }
    char peer_buf[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, &peer_addr.sin_addr, peer_buf, sizeof peer_buf);
    std::string peer = peer_buf;
    if (!admitConnection(peer)) {
      ::close(fd);
      continue;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    PollGroup* group = groups_[next_group_++ % groups_.size()].get();
    group->loop.post([this, group, fd, peer] {
      auto conn = std::make_shared<TargetConnection>(fd, *group, *this, peer);
      group->connections[fd] = conn;
      conn->start();
    });
  }
}

bool NvmeTcpTarget::admitConnection(const std::string& peer) {
  std::lock_guard<std::mutex> lock(conn_mutex_);
  const auto& l = config_.limits;
  if (total_connections_ >= l.max_connections) {
    if (refused_++ % 1000 == 0)
      spdlog::warn("nvme/tcp: refusing {}: {} queues open (max_connections)", peer, total_connections_);
    return false;
  }
  uint32_t& mine = peer_connections_[peer];
  if (mine >= l.max_connections_per_peer) {
    if (refused_++ % 1000 == 0)
      spdlog::warn("nvme/tcp: refusing {}: {} queues from it (max_connections_per_peer)", peer, mine);
    return false;
  }
  ++mine;
  ++total_connections_;
  return true;
}

void NvmeTcpTarget::connectionClosed(const std::string& peer) {
  std::lock_guard<std::mutex> lock(conn_mutex_);
  auto it = peer_connections_.find(peer);
  if (it == peer_connections_.end()) return;
  if (--it->second == 0) peer_connections_.erase(it);
  --total_connections_;
}

uint16_t NvmeTcpTarget::allocateCntlid() {
  for (int i = 0; i < 0xFFEF; ++i) {
    uint16_t id = next_cntlid_;
    next_cntlid_ = static_cast<uint16_t>(next_cntlid_ >= 0xFFEF ? 1 : next_cntlid_ + 1);
    if (!associations_.count(id)) return id;
  }
  return 0;
}

ConnectOutcome NvmeTcpTarget::connect(const Command& cmd, const std::string& local_addr, const std::string& remote,
                                      PollGroup& group, const std::shared_ptr<TargetConnection>& conn) {
  const uint8_t* s = cmd.sqe.b;
  const uint8_t* d = cmd.data.data();
  uint16_t recfmt = getLe16(s + 40), qid = getLe16(s + 42), sqsize = getLe16(s + 44);
  uint32_t kato = getLe32(s + 48);
  std::array<uint8_t, 16> hostid{};
  std::copy(d, d + 16, hostid.begin());
  uint16_t cntlid = getLe16(d + 16);
  std::string subnqn = fixedString(d + kConnectDataSubnqn, kNqnFieldSize);
  std::string hostnqn = fixedString(d + kConnectDataHostnqn, kNqnFieldSize);
  // Every refusal leaves one line with what an operator needs to find the
  // host and fix its configuration (or the subsystem's allow-list).
  auto refuse = [&](ConnectOutcome out, const char* reason) {
    spdlog::warn("nvme/tcp: refused Connect from {} (queue {}, status {:#x}): {}; subnqn '{}', hostnqn '{}'", remote,
                 qid, out.completion.status, reason, printableNqn(subnqn), printableNqn(hostnqn));
    return out;
  };
  if (recfmt != 0) {
    return refuse(ConnectOutcome{withStatus(kScConnectIncompatibleFormat), nullptr, std::nullopt}, "unknown RECFMT");
  }
  if (sqsize == 0 || sqsize + 1u > config_.limits.max_queue_entries) {
    return refuse(invalidParameter(false, 44), "SQSIZE out of range");
  }
  if (qid == 0 && sqsize < 31) return refuse(invalidParameter(false, 44), "admin SQSIZE below 32 entries");

  if (qid == 0) {
    if (cntlid != kCntlidDynamic) return refuse(invalidParameter(true, 16), "admin queue without the dynamic CNTLID");
    std::shared_ptr<Subsystem> sub;
    bool discovery = subnqn == kDiscoveryNqn;
    if (!discovery) {
      sub = registry_->find(subnqn);
      if (!sub) return refuse(invalidParameter(true, kConnectDataSubnqn), "no such subsystem");
      // An empty host NQN (fio's SPDK plugin sends one by default) names no
      // host: it passes only where any host may connect.
      if (!sub->allows(hostnqn)) {
        if (hostnqn.empty()) {
          return refuse(invalidParameter(true, kConnectDataHostnqn),
                        "empty host NQN on a subsystem with an allow-list");
        }
        return refuse(ConnectOutcome{withStatus(kScConnectInvalidHost), nullptr, std::nullopt},
                      "host not on the subsystem's allow-list");
      }
    }
    std::lock_guard<std::mutex> lock(mutex_);
    uint16_t id = allocateCntlid();
    if (id == 0) {
      return refuse(ConnectOutcome{withStatus(kScConnectControllerBusy), nullptr, std::nullopt},
                    "no controller ID left");
    }
    std::shared_ptr<Controller> ctrl;
    if (discovery) {
      ctrl = Controller::makeDiscovery(
          id, hostnqn, hostid, kato, config_.limits,
          [this, local_addr](const std::string& host) { return discoveryEntries(host, local_addr); },
          [this] { return registry_->generation(); });
    } else {
      ctrl = std::make_shared<Controller>(id, sub, hostnqn, hostid, kato, config_.limits);
    }
    Association a;
    a.controller = ctrl;
    a.queues[0] = {&group, conn};
    associations_[id] = std::move(a);
    ConnectOutcome out{Completion{}, ctrl, sub ? sub->secretsFor(hostnqn) : std::nullopt};
    out.completion.dw0 = id | (out.auth ? kConnectAuthreqAtr : 0u);
    spdlog::info("nvme/tcp: controller {} for host '{}' from {} on {}{}", id, printableNqn(hostnqn), remote, subnqn,
                 out.auth ? " (DH-HMAC-CHAP required)" : "");
    return out;
  }

  std::lock_guard<std::mutex> lock(mutex_);
  auto it = associations_.find(cntlid);
  if (it == associations_.end()) return refuse(invalidParameter(true, 16), "no controller with this CNTLID");
  Association& a = it->second;
  if (a.controller->subsystemNqn() != subnqn) {
    return refuse(invalidParameter(true, kConnectDataSubnqn), "subsystem differs from the admin queue's");
  }
  if (a.controller->hostNqn() != hostnqn) {
    return refuse(invalidParameter(true, kConnectDataHostnqn), "host NQN differs from the admin queue's");
  }
  if (a.controller->isDiscovery()) return refuse(invalidParameter(false, 42), "I/O queue on a discovery controller");
  if (!a.controller->ready()) {
    return refuse(ConnectOutcome{withStatus(kScCommandSequenceError), nullptr, std::nullopt},
                  "I/O queue before the controller is enabled");
  }
  if (qid > a.controller->grantedIoQueues() || a.queues.count(qid)) {
    return refuse(invalidParameter(false, 42), "queue ID not granted or already connected");
  }
  a.queues[qid] = {&group, conn};
  // Authentication is per queue: every I/O queue runs its own transaction
  // (as Linux and SPDK hosts do).
  ConnectOutcome out{Completion{}, a.controller, a.controller->subsystem()->secretsFor(hostnqn)};
  out.completion.dw0 = cntlid | (out.auth ? kConnectAuthreqAtr : 0u);
  return out;
}

void NvmeTcpTarget::closeQueues(const Association& a) {
  for (const auto& [qid, where] : a.queues) {
    PollGroup* group = where.first;
    std::weak_ptr<TargetConnection> weak = where.second;
    group->loop.post([weak] {
      if (auto c = weak.lock()) c->close("association ended");
    });
  }
}

void NvmeTcpTarget::queueClosed(uint16_t cntlid, uint16_t qid) {
  Association ended;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = associations_.find(cntlid);
    if (it == associations_.end()) return;
    if (qid != 0) {
      it->second.queues.erase(qid);
      return;
    }
    // The admin queue going away ends the association and its I/O queues.
    ended = std::move(it->second);
    associations_.erase(it);
  }
  ended.queues.erase(0);
  closeQueues(ended);
  spdlog::info("nvme/tcp: controller {} gone", cntlid);
}

void NvmeTcpTarget::notifyNamespaceChanged(const std::string& subnqn, uint32_t nsid) {
  std::vector<std::shared_ptr<Controller>> targets;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [_, a] : associations_) {
      if (!a.controller->isDiscovery() && a.controller->subsystemNqn() == subnqn) targets.push_back(a.controller);
    }
  }
  for (auto& c : targets) c->notifyNamespaceChanged(nsid);
}

void NvmeTcpTarget::disconnectSubsystem(const std::string& subnqn) {
  std::vector<Association> ended;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = associations_.begin(); it != associations_.end();) {
      if (it->second.controller->subsystemNqn() == subnqn) {
        ended.push_back(std::move(it->second));
        it = associations_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& a : ended) closeQueues(a);
}

std::vector<ControllerSummary> NvmeTcpTarget::controllers() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<ControllerSummary> out;
  for (const auto& [id, a] : associations_) {
    out.push_back(ControllerSummary{id, a.controller->subsystemNqn(), a.controller->hostNqn(),
                                    static_cast<int>(a.queues.size()) - 1});
  }
  return out;
}

int NvmeTcpTarget::connectionsFor(const std::string& subnqn) const {
  std::lock_guard<std::mutex> lock(mutex_);
  int n = 0;
  for (const auto& [_, a] : associations_) n += a.controller->subsystemNqn() == subnqn;
  return n;
}

std::vector<DiscoveryEntry> NvmeTcpTarget::discoveryEntries(const std::string& host_nqn,
                                                            const std::string& local_addr) const {
  std::string addr = config_.listen_addr == "0.0.0.0" ? local_addr : config_.listen_addr;
  std::string port = std::to_string(bound_port_);
  std::vector<DiscoveryEntry> out;
  out.push_back(DiscoveryEntry{kDiscoveryNqn, addr, port, kSubtypeCurrentDiscovery});
  for (const auto& s : registry_->list()) {
    if (s->allows(host_nqn)) out.push_back(DiscoveryEntry{s->nqn(), addr, port, kSubtypeNvm});
  }
  return out;
}

}  // namespace offcore::nvme
