#include "nvme/host/host.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>

#include <algorithm>
#include <cstring>

#include "base/log.h"
#include "nvme/host/fabrics.h"

namespace offcore::nvme {
namespace {

constexpr uint32_t kAdminInCapsule = 8192 - kSqeSize;  // NVME_TCP_ADMIN_CCSZ less the SQE
constexpr uint32_t kAdminDepth = 32;

}  // namespace

Sqe fabricsConnect(uint16_t qid, uint16_t sqsize, uint32_t kato) {
  Sqe s;
  s.b[0] = kFabricsCommand;
  s.b[4] = kFctConnect;
  putLe16(s.b + 40, 0);  // RECFMT
  putLe16(s.b + 42, qid);
  putLe16(s.b + 44, sqsize);
  s.b[46] = 0;  // CATTR
  putLe32(s.b + 48, kato);
  return s;
}

std::vector<uint8_t> connectData(const HostOptions& o, uint16_t cntlid, const std::string& subnqn) {
  std::vector<uint8_t> d(kConnectDataSize, 0);
  std::copy(o.host_id.begin(), o.host_id.end(), d.begin());
  putLe16(d.data() + 16, cntlid);
  std::memcpy(d.data() + kConnectDataSubnqn, subnqn.data(), std::min<size_t>(subnqn.size(), 255));
  std::memcpy(d.data() + kConnectDataHostnqn, o.host_nqn.data(), std::min<size_t>(o.host_nqn.size(), 255));
  return d;
}

namespace {

Sqe property(uint8_t fctype, uint32_t ofst, uint8_t size, uint64_t value = 0) {
  Sqe s;
  s.b[0] = kFabricsCommand;
  s.b[4] = fctype;
  s.b[40] = size;
  putLe32(s.b + 44, ofst);
  if (fctype == kFctPropertySet) putLe64(s.b + 48, value);
  return s;
}

}  // namespace

Sqe adminSqe(uint8_t opcode, uint32_t nsid) {
  Sqe s;
  s.b[0] = opcode;
  putLe32(s.b + 4, nsid);
  return s;
}

namespace {

Error statusError(const std::string& what, uint16_t status) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%03x", status);
  return makeError(what + " failed with NVMe status " + buf, kBlockIo);
}

// A queue's Authentication Send/Receive for the DH-HMAC-CHAP exchange.
class QueueAuthTransport final : public auth::AuthTransport {
 public:
  QueueAuthTransport(HostQueue& q, std::chrono::milliseconds timeout) : q_(q), timeout_(timeout) {}
  Result<uint16_t> send(const auth::Bytes& m) override {
    OC_ASSIGN_OR_RETURN(HostCompletion c, q_.submit(auth::authSendSqe(static_cast<uint32_t>(m.size())), m.data(),
                                                    m.size(), nullptr, 0, timeout_));
    return c.status();
  }
  Result<std::pair<uint16_t, auth::Bytes>> receive(uint32_t al) override {
    auth::Bytes buf(al, 0);
    OC_ASSIGN_OR_RETURN(HostCompletion c,
                        q_.submit(auth::authReceiveSqe(al), nullptr, 0, buf.data(), buf.size(), timeout_));
    return std::make_pair(c.status(), std::move(buf));
  }

 private:
  HostQueue& q_;
  std::chrono::milliseconds timeout_;
};

std::atomic<uint16_t> g_auth_tid{1};

// After a successful Connect: authenticates the queue when the target asks
// (AUTHREQ.ATR), or refuses a target that does not ask while we hold a
// controller secret (it could be anyone).
Status authenticateAfterConnect(HostQueue& q, const HostOptions& o, const std::string& subnqn, uint32_t dw0,
                                uint16_t qid) {
  std::string where = subnqn + (qid ? " (I/O queue " + std::to_string(qid) + ")" : " (admin queue)");
  if (dw0 & kConnectAuthreqAscr) {
    return makeError("the target asks for a secure channel (TLS) on " + where + "; not supported", kBlockIo);
  }
  if (!(dw0 & kConnectAuthreqAtr)) {
    if (o.dhchap_ctrl_secret) {
      return makeError("the target did not ask for DH-HMAC-CHAP on " + where +
                           " but a controller secret is configured: refusing an unauthenticated target",
                       kBlockIo);
    }
    return okStatus();
  }
  if (!o.dhchap_secret) {
    return makeError("the target requires DH-HMAC-CHAP for host " + o.host_nqn + " on " + where +
                         "; pass its secret (--dhchap-secret or --secret-file)",
                     kBlockIo);
  }
  auth::HostAuthConfig cfg{*o.dhchap_secret, o.dhchap_ctrl_secret, o.dhchap_hashes, o.dhchap_dhgroups};
  QueueAuthTransport t(q, o.command_timeout);
  auto r = auth::authenticateQueue(t, cfg, o.host_nqn, subnqn, g_auth_tid++);
  if (!r.ok()) return makeError(r.error().message + " [" + where + "]", kBlockIo);
  spdlog::debug("nvme/tcp host: authenticated {} ({}, {}{})", where, auth::hashName(r->hash),
                auth::dhGroupName(r->dhgroup), r->bidirectional ? ", bidirectional" : "");
  return okStatus();
}

}  // namespace

// Brings a fresh admin queue to CSTS.RDY: Connect, authentication, CC.EN=1, wait.
Result<uint16_t> connectAdmin(HostQueue& q, const HostOptions& o, const std::string& subnqn, uint32_t kato) {
  auto data = connectData(o, kCntlidDynamic, subnqn);
  OC_ASSIGN_OR_RETURN(HostCompletion c, q.submit(fabricsConnect(0, kAdminDepth - 1, kato), data.data(), data.size(),
                                                 nullptr, 0, o.command_timeout));
  if (c.status() == kScConnectInvalidHost) {
    return makeError(
        "the target refused this host (" + o.host_nqn + ") for " + subnqn + "; add it to the volume's allowed hosts",
        kBlockIo);
  }
  if (c.status() == kScConnectInvalidParameters) {
    return makeError("the target has no subsystem " + subnqn + " (see `offcore volume list`)", kBlockIo);
  }
  if (c.status() == kScAuthRequired) {
    return makeError("the target requires DH-HMAC-CHAP authentication for " + o.host_nqn, kBlockIo);
  }
  if (c.status() != kScSuccess) return statusError("Connect", c.status());
  uint16_t cntlid = static_cast<uint16_t>(c.cqe.dw0() & 0xFFFF);
  OC_TRY(authenticateAfterConnect(q, o, subnqn, c.cqe.dw0(), 0));
  OC_ASSIGN_OR_RETURN(HostCompletion cap,
                      q.submit(property(kFctPropertyGet, kPropCap, 1), nullptr, 0, nullptr, 0, o.command_timeout));
  uint32_t timeout_ms = ((cap.cqe.dw0() >> 24) & 0xFF) * 500;
  uint32_t cc = kCcEnable | (6u << 16) | (4u << 20);
  OC_ASSIGN_OR_RETURN(HostCompletion set,
                      q.submit(property(kFctPropertySet, kPropCc, 0, cc), nullptr, 0, nullptr, 0, o.command_timeout));
  if (set.status() != kScSuccess) return statusError("Property Set CC", set.status());
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(std::max(timeout_ms, 500u));
  for (;;) {
    OC_ASSIGN_OR_RETURN(HostCompletion csts,
                        q.submit(property(kFctPropertyGet, kPropCsts, 0), nullptr, 0, nullptr, 0, o.command_timeout));
    if (csts.cqe.dw0() & 2) return makeError("the controller reports a fatal status (CSTS.CFS)", kBlockIo);
    if (csts.cqe.dw0() & kCstsReady) break;
    if (std::chrono::steady_clock::now() > deadline) return makeError("the controller never became ready", kBlockIo);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return cntlid;
}

Error blockErrorForStatus(uint16_t status, const std::string& what) {
  switch (status) {
    case kScLbaOutOfRange: return makeError(what + ": LBA out of range", kBlockOutOfRange);
    case kScCapacityExceeded: return makeError(what + ": the thin pool is full", kBlockNoSpace);
    case kScNamespaceWriteProtected: return makeError(what + ": the namespace is read-only", kBlockReadOnly);
    case kScInvalidField:
    case kScSglDataLengthInvalid: return statusError(what, status).wrap("invalid request");
    default: return statusError(what, status);
  }
}

Result<std::vector<DiscoveryRecord>> discover(const std::string& address, uint16_t port, const HostOptions& options) {
  QueueOptions qo{
      address, port, options.header_digest, options.data_digest, kAdminDepth, kAdminInCapsule, options.connect_timeout};
  HostQueue q(qo);
  OC_TRY(q.open());
  OC_TRY(connectAdmin(q, options, kDiscoveryNqn, 0));
  auto getLog = [&](size_t len) -> Result<std::vector<uint8_t>> {
    std::vector<uint8_t> buf(len);
    Sqe s = adminSqe(kAdminGetLogPage);
    uint32_t numd = static_cast<uint32_t>(len / 4 - 1);
    putLe32(s.b + 40, kLogDiscovery | ((numd & 0xFFFF) << 16));
    putLe32(s.b + 44, numd >> 16);
    OC_ASSIGN_OR_RETURN(HostCompletion c, q.submit(s, nullptr, 0, buf.data(), buf.size(), options.command_timeout));
    if (c.status() != kScSuccess) return statusError("Get Log Page (discovery)", c.status());
    return buf;
  };
  OC_ASSIGN_OR_RETURN(auto head, getLog(1024));
  uint64_t numrec = getLe64(head.data() + 8);
  if (numrec > 1024) return makeError("the discovery log claims " + std::to_string(numrec) + " records");
  OC_ASSIGN_OR_RETURN(auto page, getLog(1024 + numrec * kDiscoveryEntrySize));
  std::vector<DiscoveryRecord> out;
  auto field = [](const uint8_t* p, size_t n, bool trim_spaces) {
    std::string s(reinterpret_cast<const char*>(p), strnlen(reinterpret_cast<const char*>(p), n));
    if (trim_spaces) {
      while (!s.empty() && s.back() == ' ') s.pop_back();
    }
    return s;
  };
  for (uint64_t i = 0; i < numrec; ++i) {
    const uint8_t* e = page.data() + 1024 + i * kDiscoveryEntrySize;
    out.push_back(
        DiscoveryRecord{field(e + 256, 256, false), field(e + 512, 256, true), field(e + 32, 32, true), e[2]});
  }
  q.close();
  return out;
}

NvmeTcpHost::NvmeTcpHost(std::string address, uint16_t port, std::string subnqn, HostOptions options, uint32_t nsid)
    : address_(std::move(address)),
      port_(port),
      subnqn_(std::move(subnqn)),
      options_(std::move(options)),
      nsid_(nsid) {}

NvmeTcpHost::~NvmeTcpHost() {
  close();
  if (poll_fd_ >= 0) ::close(poll_fd_);
  if (retried_fd_ >= 0) ::close(retried_fd_);
}

Result<std::shared_ptr<NvmeTcpHost>> NvmeTcpHost::connect(const std::string& address, uint16_t port,
                                                          const std::string& subnqn, const HostOptions& options,
                                                          uint32_t nsid) {
  std::shared_ptr<NvmeTcpHost> host(new NvmeTcpHost(address, port, subnqn, options, nsid));
  if (options.polled) {
    host->poll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (host->poll_fd_ < 0) return errnoError("epoll_create1");
    host->retried_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (host->retried_fd_ < 0) return errnoError("eventfd");
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = host->retried_fd_;
    if (::epoll_ctl(host->poll_fd_, EPOLL_CTL_ADD, host->retried_fd_, &ev) != 0) return errnoError("epoll_ctl ADD");
  }
  OC_TRY(host->establish());
  NvmeTcpHost* raw = host.get();
  host->keepalive_ = std::thread([raw] { raw->keepAliveLoop(); });
  host->reconnector_ = std::thread([raw] { raw->reconnectLoop(); });
  return host;
}

Status NvmeTcpHost::establish() {
  QueueOptions qo{address_,    port_,           options_.header_digest,  options_.data_digest,
                  kAdminDepth, kAdminInCapsule, options_.connect_timeout};
  auto admin = std::make_shared<HostQueue>(qo);
  OC_TRY(admin->open());
  OC_ASSIGN_OR_RETURN(uint16_t cntlid, connectAdmin(*admin, options_, subnqn_, options_.kato_ms));

  std::vector<uint8_t> id(kIdentifySize);
  Sqe ident = adminSqe(kAdminIdentify);
  putLe32(ident.b + 40, kCnsController);
  OC_ASSIGN_OR_RETURN(HostCompletion ic,
                      admin->submit(ident, nullptr, 0, id.data(), id.size(), options_.command_timeout));
  if (ic.status() != kScSuccess) return statusError("Identify Controller", ic.status());
  uint8_t mdts = id[77];
  uint32_t ioccsz = getLe32(id.data() + 1792);
  max_transfer_.store(mdts ? std::min<uint32_t>(4096u << mdts, 1u << 20) : (1u << 20), std::memory_order_relaxed);
  in_capsule_ = ioccsz * 16 > kSqeSize ? ioccsz * 16 - kSqeSize : 0;

  Sqe nq = adminSqe(kAdminSetFeatures);
  uint32_t want = static_cast<uint32_t>(std::max(1, options_.io_queues)) - 1;
  putLe32(nq.b + 40, kFeatNumQueues);
  putLe32(nq.b + 44, (want << 16) | want);
  OC_ASSIGN_OR_RETURN(HostCompletion nqc, admin->submit(nq, nullptr, 0, nullptr, 0, options_.command_timeout));
  if (nqc.status() != kScSuccess) return statusError("Set Features (number of queues)", nqc.status());
  uint32_t granted = std::min<uint32_t>(nqc.cqe.dw0() & 0xFFFF, nqc.cqe.dw0() >> 16) + 1;
  granted = std::min<uint32_t>(granted, static_cast<uint32_t>(std::max(1, options_.io_queues)));

  Sqe ns = adminSqe(kAdminIdentify, nsid_);
  putLe32(ns.b + 40, kCnsNamespace);
  OC_ASSIGN_OR_RETURN(HostCompletion nsc,
                      admin->submit(ns, nullptr, 0, id.data(), id.size(), options_.command_timeout));
  if (nsc.status() != kScSuccess) return statusError("Identify Namespace", nsc.status());
  uint64_t nsze = getLe64(id.data());
  if (nsze == 0) return makeError("namespace " + std::to_string(nsid_) + " is not active on " + subnqn_, kBlockIo);
  uint8_t lbaf = id[26] & 0xF;
  uint8_t lbads = id[128 + 4 * lbaf + 2];
  if (lbads < 9 || lbads > 16) return makeError("unsupported LBA size 2^" + std::to_string(lbads), kBlockIo);

  std::vector<std::shared_ptr<HostQueue>> io;
  for (uint32_t qid = 1; qid <= granted; ++qid) {
    QueueOptions ioq{address_,
                     port_,
                     options_.header_digest,
                     options_.data_digest,
                     options_.queue_depth,
                     in_capsule_,
                     options_.connect_timeout,
                     options_.polled};
    auto q = std::make_shared<HostQueue>(ioq);
    OC_TRY(q->open());
    auto data = connectData(options_, cntlid, subnqn_);
    OC_ASSIGN_OR_RETURN(HostCompletion c, q->submit(fabricsConnect(static_cast<uint16_t>(qid),
                                                                   static_cast<uint16_t>(options_.queue_depth - 1), 0),
                                                    data.data(), data.size(), nullptr, 0, options_.command_timeout));
    if (c.status() != kScSuccess) return statusError("Connect I/O queue " + std::to_string(qid), c.status());
    OC_TRY(authenticateAfterConnect(*q, options_, subnqn_, c.cqe.dw0(), static_cast<uint16_t>(qid)));
    io.push_back(std::move(q));
  }
  if (poll_fd_ >= 0) {
    // Registered only once the whole association is up: a failed attempt
    // leaves nothing in the set (its queues close their fds).
    for (auto& q : io) {
      q->attachPoller();
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLRDHUP;
      ev.data.fd = q->fd();
      if (::epoll_ctl(poll_fd_, EPOLL_CTL_ADD, q->fd(), &ev) != 0) return errnoError("epoll_ctl ADD");
    }
  }
  {
    std::lock_guard<std::mutex> lock(state_mutex_);
    size_bytes_ = nsze << lbads;
    block_size_ = 1u << lbads;
    cntlid_ = cntlid;
    admin_ = std::move(admin);
    io_ = std::move(io);
    queues_changed_++;
    if (generation_++ > 0) {
      stats_.reconnects.fetch_add(1, std::memory_order_relaxed);  // counted before waiters see the new association
    }
    connected_ = true;
  }
  state_cv_.notify_all();
  spdlog::info("nvme/tcp host: connected to {} at {}:{} as controller {} ({} I/O queues, {} bytes)", subnqn_, address_,
               port_, cntlid, granted, size_bytes_);
  return okStatus();
}

void NvmeTcpHost::markBroken() {
  {
    std::lock_guard<std::mutex> lock(state_mutex_);
    if (connected_.exchange(false)) {
      lost_at_ = std::chrono::steady_clock::now();
      spdlog::warn("nvme/tcp host: lost {} at {}:{}; reconnecting", subnqn_, address_, port_);
    }
  }
  state_cv_.notify_all();
}

HostState NvmeTcpHost::state() const {
  if (failed_) return HostState::kFailed;
  return connected_ ? HostState::kLive : HostState::kReconnecting;
}

const char* hostStateName(HostState s) {
  switch (s) {
    case HostState::kLive: return "live";
    case HostState::kReconnecting: return "reconnecting";
    case HostState::kFailed: return "failed";
  }
  return "unknown";
}

Error NvmeTcpHost::failNow(const std::string& why, int code) {
  stats_.errors.fetch_add(1, std::memory_order_relaxed);
  return makeError(why, code);
}

// How often the reconnect thread looks for overdue asynchronous commands.
constexpr auto kOverdueTick = std::chrono::milliseconds(100);

void NvmeTcpHost::reconnectLoop() {
  auto backoff = std::chrono::milliseconds(100);
  while (!closing_) {
    {
      std::unique_lock<std::mutex> lock(state_mutex_);
      // While connected, also watch the asynchronous commands: one left
      // unanswered past its deadline (a partition: nothing resets the
      // connection) means the association is stuck, as a timed-out
      // synchronous command does.
      while (!closing_ && connected_) {
        state_cv_.wait_for(lock, kOverdueTick);
        if (closing_ || !connected_) break;
        auto now = std::chrono::steady_clock::now();
        bool stuck = false;
        for (auto& q : io_) stuck = stuck || q->overdue(now);
        if (stuck) {
          connected_ = false;
          lost_at_ = now;
          spdlog::warn("nvme/tcp host: a command to {} at {}:{} got no answer in time; reconnecting", subnqn_, address_,
                       port_);
        }
      }
      if (closing_) return;
      if (options_.ctrl_loss_timeout.count() >= 0 &&
          std::chrono::steady_clock::now() - lost_at_ >= options_.ctrl_loss_timeout) {
        failed_ = true;
        spdlog::error(
            "nvme/tcp host: {} at {}:{} lost for longer than the controller loss timeout ({} ms); "
            "giving up, I/O fails until the disk is attached again",
            subnqn_, address_, port_, options_.ctrl_loss_timeout.count());
      }
    }
    if (failed_) {
      state_cv_.notify_all();
      break;
    }
    std::shared_ptr<HostQueue> admin;
    std::vector<std::shared_ptr<HostQueue>> io;
    {
      std::lock_guard<std::mutex> lock(state_mutex_);
      admin = std::move(admin_);
      io = std::move(io_);
      if (poll_fd_ >= 0) {
        // The poller owns these queues' reads: it sees them die and fails
        // their commands (reapCompletions); until then they stay listed.
        draining_.insert(draining_.end(), io.begin(), io.end());
        queues_changed_++;
      }
    }
    if (admin) admin->close();
    for (auto& q : io) {
      if (poll_fd_ >= 0) {
        q->shutdown();
      } else {
        q->close();
      }
    }
    std::this_thread::sleep_for(backoff);
    if (closing_) return;
    auto s = establish();
    if (s.ok()) {
      backoff = std::chrono::milliseconds(100);
    } else {
      spdlog::debug("nvme/tcp host: reconnect failed: {}", s.error().message);
      // At most a second between attempts: a returning gateway is found well
      // within the default fast-io-fail (5 s), so a restart stays a stall.
      backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
    }
  }
}

void NvmeTcpHost::keepAliveLoop() {
  auto period = std::chrono::milliseconds(std::max<uint32_t>(options_.kato_ms / 2, 200));
  while (!closing_) {
    {
      std::unique_lock<std::mutex> lock(state_mutex_);
      state_cv_.wait_for(lock, period, [&] { return closing_.load(); });
      if (closing_) return;
    }
    if (!connected_) continue;
    std::shared_ptr<HostQueue> admin;
    bool io_dead = false;
    {
      std::lock_guard<std::mutex> lock(state_mutex_);
      admin = admin_;
      for (auto& q : io_) io_dead = io_dead || !q->alive();
    }
    if (!admin || io_dead) {
      markBroken();
      continue;
    }
    auto r = admin->submit(adminSqe(kAdminKeepAlive), nullptr, 0, nullptr, 0, options_.command_timeout);
    if (!r.ok() || r->status() != kScSuccess) markBroken();
  }
}

void NvmeTcpHost::close() {
  if (closing_.exchange(true)) return;
  state_cv_.notify_all();
  if (keepalive_.joinable()) keepalive_.join();
  if (reconnector_.joinable()) reconnector_.join();
  std::shared_ptr<HostQueue> admin;
  std::vector<std::shared_ptr<HostQueue>> io;
  {
    std::lock_guard<std::mutex> lock(state_mutex_);
    admin = std::move(admin_);
    io = std::move(io_);
    io_.clear();
    // Polled mode: the poller has stopped by now (the contract), so close()
    // below fails what the draining queues still hold.
    io.insert(io.end(), draining_.begin(), draining_.end());
    draining_.clear();
    queues_changed_++;
    connected_ = false;
  }
  state_cv_.notify_all();
  // Outside state_mutex_: closing a queue fails its asynchronous commands
  // to their waiters, which may take that mutex.
  if (admin) {
    // A clean shutdown: CC.SHN normal, then drop the association. Its
    // result does not matter: the association ends either way.
    (void)admin->submit(
        property(kFctPropertySet, kPropCc, 0, kCcEnable | (1u << kCcShnShift) | (6u << 16) | (4u << 20)), nullptr, 0,
        nullptr, 0, std::chrono::milliseconds(1000));
    admin->close();
  }
  for (auto& q : io) q->close();
  // Retries see closing_ and fail at once; their completions may still be
  // running.
  {
    std::unique_lock<std::mutex> lock(retry_mutex_);
    retry_cv_.wait(lock, [&] { return retrying_ == 0; });
  }
  finishRetried();  // polled: the poller has stopped, so they finish here
}

HostStats NvmeTcpHost::stats() const {
  HostStats out;
  out.reads = stats_.reads.load(std::memory_order_relaxed);
  out.writes = stats_.writes.load(std::memory_order_relaxed);
  out.flushes = stats_.flushes.load(std::memory_order_relaxed);
  out.discards = stats_.discards.load(std::memory_order_relaxed);
  out.reconnects = stats_.reconnects.load(std::memory_order_relaxed);
  out.errors = stats_.errors.load(std::memory_order_relaxed);
  out.fast_failed = stats_.fast_failed.load(std::memory_order_relaxed);
  return out;
}

Status NvmeTcpHost::ioCommand(Sqe sqe, const uint8_t* out, size_t out_len, uint8_t* in, size_t in_len, bool is_write,
                              std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    std::shared_ptr<HostQueue> q;
    {
      std::unique_lock<std::mutex> lock(state_mutex_);
      // Wait for the association, but no longer than io_timeout, nor past
      // fast_io_fail after the loss (lost_at_ moves if it comes and goes).
      bool fast_failed = false;
      while (!connected_ && !closing_ && !failed_) {
        auto limit = deadline;
        if (options_.fast_io_fail.count() >= 0) limit = std::min(limit, lost_at_ + options_.fast_io_fail);
        if (std::chrono::steady_clock::now() >= limit) {
          fast_failed = limit < deadline;
          break;
        }
        state_cv_.wait_until(lock, limit);
      }
      if (failed_) {
        return failNow(subnqn_ + " at " + address_ + ":" + std::to_string(port_) +
                           " is failed (lost for longer than the controller loss timeout); detach and attach it again",
                       kBlockIo);
      }
      if (closing_) return failNow(subnqn_ + ": the initiator is closing", kBlockIo);
      if (fast_failed) {
        stats_.fast_failed.fetch_add(1, std::memory_order_relaxed);
        return failNow("no connection to " + subnqn_ + " for " + std::to_string(options_.fast_io_fail.count()) +
                           " ms (fast-io-fail): I/O fails at once until the target is back",
                       kBlockIo);
      }
      if (!connected_) {
        return failNow("no connection to " + subnqn_ + " within " + std::to_string(options_.io_timeout.count()) + " ms",
                       kBlockTimedOut);
      }
      q = io_[next_queue_++ % io_.size()];
    }
    auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    auto timeout = std::min(options_.command_timeout, std::max(remaining, std::chrono::milliseconds(1)));
    auto r = q->submit(sqe, out, out_len, in, in_len, timeout);
    if (r.ok()) {
      if (r->status() == kScSuccess) return okStatus();
      stats_.errors.fetch_add(1, std::memory_order_relaxed);
      return blockErrorForStatus(r->status(), is_write ? "write" : "read");
    }
    // Transport trouble: the association is gone or stuck. Retry on the next one.
    markBroken();
    if (std::chrono::steady_clock::now() >= deadline) return failNow(r.error().message, kBlockTimedOut);
  }
}

Status NvmeTcpHost::checkRange(uint64_t offset, uint64_t len) const {
  if (offset % block_size_ || len % block_size_) return makeError("misaligned I/O", kBlockInvalid);
  if (offset > size_bytes_ || len > size_bytes_ - offset) {
    return makeError("I/O beyond the end of the namespace", kBlockOutOfRange);
  }
  return okStatus();
}

Sqe NvmeTcpHost::rwSqe(bool is_write, uint64_t offset, size_t len) const {
  Sqe s = adminSqe(is_write ? kIoWrite : kIoRead, nsid_);
  putLe64(s.b + 40, offset / block_size_);
  putLe32(s.b + 48, static_cast<uint32_t>(len / block_size_ - 1));
  return s;
}

Status NvmeTcpHost::read(uint64_t offset, void* buf, size_t len) {
  OC_TRY(checkRange(offset, len));
  auto* p = static_cast<uint8_t*>(buf);
  const size_t max = max_transfer_.load(std::memory_order_relaxed);
  for (size_t done = 0; done < len;) {
    size_t n = std::min<size_t>(len - done, max);
    OC_TRY(ioCommand(rwSqe(false, offset + done, n), nullptr, 0, p + done, n, false));
    done += n;
  }
  stats_.reads.fetch_add(1, std::memory_order_relaxed);
  return okStatus();
}

Status NvmeTcpHost::write(uint64_t offset, const void* buf, size_t len) {
  OC_TRY(checkRange(offset, len));
  const auto* p = static_cast<const uint8_t*>(buf);
  const size_t max = max_transfer_.load(std::memory_order_relaxed);
  for (size_t done = 0; done < len;) {
    size_t n = std::min<size_t>(len - done, max);
    OC_TRY(ioCommand(rwSqe(true, offset + done, n), p + done, n, nullptr, 0, true));
    done += n;
  }
  stats_.writes.fetch_add(1, std::memory_order_relaxed);
  return okStatus();
}

Status NvmeTcpHost::flush() {
  OC_TRY(ioCommand(adminSqe(kIoFlush, nsid_), nullptr, 0, nullptr, 0, true));
  stats_.flushes.fetch_add(1, std::memory_order_relaxed);
  return okStatus();
}

Status NvmeTcpHost::discard(uint64_t offset, uint64_t len) {
  OC_TRY(checkRange(offset, len));
  uint64_t lba = offset / block_size_, blocks = len / block_size_;
  while (blocks > 0) {
    std::vector<uint8_t> ranges;
    uint32_t nr = 0;
    while (blocks > 0 && nr < 256) {
      uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(blocks, 0xFFFFFFFFu));
      uint8_t r[16] = {};
      putLe32(r + 4, n);
      putLe64(r + 8, lba);
      ranges.insert(ranges.end(), r, r + 16);
      lba += n;
      blocks -= n;
      ++nr;
    }
    Sqe s = adminSqe(kIoDatasetManagement, nsid_);
    putLe32(s.b + 40, nr - 1);
    putLe32(s.b + 44, 1u << 2);  // AD: deallocate
    OC_TRY(ioCommand(s, ranges.data(), ranges.size(), nullptr, 0, true));
  }
  stats_.discards.fetch_add(1, std::memory_order_relaxed);
  return okStatus();
}

Status NvmeTcpHost::writeZeroes(uint64_t offset, uint64_t len) {
  OC_TRY(checkRange(offset, len));
  uint64_t lba = offset / block_size_, blocks = len / block_size_;
  while (blocks > 0) {
    uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(blocks, 65536));
    Sqe s = adminSqe(kIoWriteZeroes, nsid_);
    putLe64(s.b + 40, lba);
    putLe32(s.b + 48, n - 1);
    OC_TRY(ioCommand(s, nullptr, 0, nullptr, 0, true));
    lba += n;
    blocks -= n;
  }
  return okStatus();
}

}  // namespace offcore::nvme
