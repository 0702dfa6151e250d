#include "nvme/target/connection.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "base/log.h"
#include "nvme/target/target.h"

namespace offcore::nvme {
namespace {

constexpr uint32_t kAdminCapsuleData = 8192;  // NVME_TCP_ADMIN_CCSZ
constexpr size_t kC2HChunk = 131072;

// Transfer direction of a command: 1 host-to-controller, 2 controller-to-host.
int direction(const Sqe& sqe) {
  uint8_t code = sqe.opcode() == kFabricsCommand ? sqe.fctype() : sqe.opcode();
  return code & 0x3;
}

}  // namespace

TargetConnection::TargetConnection(int fd, PollGroup& group, NvmeTcpTarget& target, std::string peer)
    : fd_(fd), group_(group), target_(target), peer_(std::move(peer)) {
  sockaddr_in addr{};
  socklen_t len = sizeof addr;
  if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    char buf[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, &addr.sin_addr, buf, sizeof buf);
    local_addr_ = buf;
  }
  // The host's address and port, for the log lines that must identify it.
  len = sizeof addr;
  if (::getpeername(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    char buf[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, &addr.sin_addr, buf, sizeof buf);
    remote_ = std::string(buf) + ":" + std::to_string(ntohs(addr.sin_port));
  } else {
    remote_ = peer_;
  }
  // Until Connect, only the admin capsule size: a Connect carries 1024 bytes.
  ParserLimits limits;
  limits.max_capsule_data = kAdminCapsuleData;
  limits.max_data_pdu = target_.config().limits.max_h2c_data;
  parser_.setLimits(limits);
}

TargetConnection::~TargetConnection() {
  if (state_ != State::kClosed && fd_ >= 0) ::close(fd_);
}

void TargetConnection::start() {
  std::weak_ptr<TargetConnection> weak = shared_from_this();
  interest_ = EPOLLIN | EPOLLRDHUP;
  auto watched = group_.loop.watchFd(fd_, interest_, [weak](uint32_t ev) {
    if (auto self = weak.lock()) self->onEvents(ev);
  });
  if (!watched.ok()) {
    close(watched.error().message);
    return;
  }
  armConnectTimeout();
}

void TargetConnection::armConnectTimeout() {
  std::weak_ptr<TargetConnection> weak = shared_from_this();
  uint32_t ms = target_.config().limits.connect_timeout_ms;
  connect_timer_ = group_.loop.addTimer(std::chrono::milliseconds(ms), [weak, ms] {
    auto self = weak.lock();
    if (!self) return;
    self->connect_timer_ = 0;
    if (self->state_ == State::kClosed || self->connected_) return;
    spdlog::warn("nvme/tcp: {} sent no Connect within {} ms, closing", self->peer_, ms);
    self->close("no Connect within the connect timeout");
  });
}

void TargetConnection::onEvents(uint32_t events) {
  if (events & EPOLLOUT) flushOutput();
  if (state_ == State::kClosed) return;
  if (paused_) {
    if (outputFull()) {
      // Only a hang-up can reach us here (EPOLLIN is off): nothing more will drain.
      if (events & (EPOLLHUP | EPOLLERR)) close("host hung up with replies unsent");
      return;
    }
    paused_ = false;  // output drained below the bound: read again
    updateInterest();
    if (state_ == State::kClosed) return;
    readAvailable();
    return;
  }
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)) readAvailable();
}

// Back-pressure: a host that sends commands but does not read the replies
// makes us stop reading it once the unsent output passes max_output_bytes;
// its further PDUs wait in its own socket buffer, not in our memory.
bool TargetConnection::drainParser() {
  for (;;) {
    if (outputFull()) {
      flushOutput();  // the replies batched so far go out first
      if (state_ == State::kClosed) return false;
    }
    if (outputFull()) {
      paused_ = true;
      updateInterest();
      return false;
    }
    std::optional<FatalError> error;
    auto pdu = parser_.next(error);
    if (error) {
      terminate(*error);
      return false;
    }
    if (!pdu) return true;
    handlePdu(*pdu);
    if (state_ == State::kClosed) return false;
  }
}

// The replies to the PDUs of one read() leave together: one sendmsg for a
// batch of commands instead of one per reply (over loopback or a veth the
// sender also pays for the receiver's stack, per segment).
struct TargetConnection::ReplyBatch {
  explicit ReplyBatch(TargetConnection& c) : c(c) { ++c.batching_; }
  ~ReplyBatch() {
    if (--c.batching_ == 0) c.flushPending();
  }
  TargetConnection& c;
};

void TargetConnection::flushPending() {
  if (state_ != State::kClosed && !want_write_ && !out_.empty()) flushOutput();
}

void TargetConnection::readAvailable() {
  auto self = shared_from_this();  // a handler may close us
  ReplyBatch batch(*this);
  if (!drainParser()) return;
  uint8_t buf[65536];
  for (;;) {
    ssize_t n = ::read(fd_, buf, sizeof buf);
    if (n > 0) {
      parser_.feed(buf, static_cast<size_t>(n));
      if (!drainParser()) return;
      flushPending();  // this read's replies
      continue;
    }
    if (n == 0) {
      close("host closed the connection");
      return;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    close(std::string("read: ") + std::strerror(errno));
    return;
  }
}

bool TargetConnection::outputFull() const { return out_bytes_ > target_.config().limits.max_output_bytes; }

void TargetConnection::updateInterest() {
  if (state_ == State::kClosed) return;
  uint32_t want = (paused_ ? 0u : (EPOLLIN | EPOLLRDHUP)) | (want_write_ ? EPOLLOUT : 0u);
  if (want == interest_) return;
  auto s = group_.loop.modifyFd(fd_, want);
  if (!s.ok()) {
    close("epoll: " + s.error().message);  // without the watch the queue would hang silently
    return;
  }
  interest_ = want;
}

void TargetConnection::handlePdu(Pdu& pdu) {
  if (state_ == State::kAwaitIcReq) {
    if (pdu.type != kIcReq) {
      terminate(FatalError{kFesPduSequenceError, 0, pdu.header, "first PDU is not an ICReq"});
      return;
    }
    handleIcReq(pdu);
    return;
  }
  switch (pdu.type) {
    case kCapsuleCmd: handleCapsule(pdu); return;
    case kH2CData: handleH2CData(pdu); return;
    case kH2CTermReq: close("host sent H2CTermReq, FES " + std::to_string(getLe16(pdu.header.data() + 8))); return;
    default: terminate(FatalError{kFesPduSequenceError, 0, pdu.header, "unexpected PDU"}); return;
  }
}

void TargetConnection::handleIcReq(const Pdu& pdu) {
  const uint8_t* h = pdu.header.data();
  if (getLe16(h + 8) != 0) {
    terminate(FatalError{kFesUnsupportedParameter, 8, pdu.header, "unsupported PFV"});
    return;
  }
  uint8_t hpda = h[10];
  if (hpda > 31) {
    terminate(FatalError{kFesUnsupportedParameter, 10, pdu.header, "HPDA above 31"});
    return;
  }
  uint8_t dgst = h[11] & (kHdgstEnable | kDdgstEnable);
  header_digest_ = dgst & kHdgstEnable;
  data_digest_ = dgst & kDdgstEnable;
  host_alignment_ = (hpda + 1u) * 4u;
  send(buildIcResp(/*cpda=*/0, dgst, target_.config().limits.max_h2c_data));
  ParserLimits limits = parser_.limits();
  limits.header_digest = header_digest_;
  limits.data_digest = data_digest_;
  limits.data_alignment = 4;  // CPDA 0
  parser_.setLimits(limits);
  state_ = State::kReady;
}

void TargetConnection::handleCapsule(Pdu& pdu) {
  Command cmd;
  std::copy(pdu.header.begin() + kCommonHeaderSize, pdu.header.begin() + kCommonHeaderSize + kSqeSize, cmd.sqe.b);
  cmd.qid = qid_;
  if (sq_size_ > 0) sq_head_ = static_cast<uint16_t>((sq_head_ + 1) % sq_size_);
  const uint16_t cid = cmd.sqe.cid();
  const int dir = direction(cmd.sqe);
  cmd.transfer_len = dir ? cmd.sqe.sglLength() : 0;
  const uint64_t mdts_bytes = 4096ULL << target_.config().limits.mdts;

  if (!pdu.data_digest_ok) {
    respond(cid, withStatus(kScDataTransferError), 0);
    return;
  }
  if (!connected_) {
    // Before Connect nothing is allocated for the host: only a Connect with
    // its 1024 bytes in the capsule is accepted (never by R2T).
    if (!(cmd.sqe.opcode() == kFabricsCommand && cmd.sqe.fctype() == kFctConnect)) {
      respond(cid, withStatus(kScCommandSequenceError), 0);
      return;
    }
    if (pdu.data.size() != kConnectDataSize || cmd.transfer_len != kConnectDataSize) {
      respond(cid, withStatus(kScSglDataLengthInvalid), 0);
      return;
    }
  }
  if (authPending()) {
    // Until this queue authenticates only Authentication Send/Receive run
    // (as SPDK does), and their data is bounded before anything is allocated.
    bool auth_cmd = cmd.sqe.opcode() == kFabricsCommand &&
                    (cmd.sqe.fctype() == kFctAuthSend || cmd.sqe.fctype() == kFctAuthReceive);
    if (!auth_cmd) return respond(cid, withStatus(kScAuthRequired | kStatusDnr), 0);
    // A Send's data is received before it is parsed: at most kMaxAuthMessage.
    // A Receive's AL may be anything up to MDTS: only the message is allocated.
    if (cmd.sqe.fctype() == kFctAuthSend && cmd.transfer_len > auth::kMaxAuthMessage) {
      return respond(cid, withStatus(kScInvalidField | kStatusDnr), 0);
    }
  }
  if (pending_writes_.count(cid) || deferred_cids_.count(cid)) {
    respond(cid, withStatus(kScCidConflict), 0);
    return;
  }
  if (connected_ && pending_writes_.size() + deferred_cids_.size() + unsent_completions_ >= sq_size_) {
    // SQSIZE bounds the commands outstanding at once; a host past it ignores flow control.
    terminate(FatalError{kFesPduSequenceError, 0, pdu.header, "more commands outstanding than SQSIZE"});
    return;
  }
  if (dir == 3) {
    respond(cid, withStatus(kScInvalidField), 0);
    return;
  }
  if (dir && cmd.transfer_len > mdts_bytes) {
    respond(cid, withStatus(kScSglDataLengthInvalid), 0);  // every transfer is capped at MDTS, both ways
    return;
  }
  if (dir == 1 && cmd.transfer_len > 0) {
    if (!pdu.data.empty()) {
      if (cmd.sqe.sglId() != kSglDataBlockOffset) return respond(cid, withStatus(kScSglInvalidDescriptorType), 0);
      if (cmd.sqe.sglAddress() != 0) return respond(cid, withStatus(kScSglOffsetInvalid), 0);
      if (pdu.data.size() != cmd.transfer_len) return respond(cid, withStatus(kScSglDataLengthInvalid), 0);
      cmd.data = std::move(pdu.data);  // in-capsule write data: no second copy
      execute(cmd);
      return;
    }
    if (cmd.sqe.sglId() != kSglTransportDataBlock) return respond(cid, withStatus(kScSglInvalidDescriptorType), 0);
    PendingWrite pw;
    pw.ttag = next_ttag_++;
    pw.cmd = std::move(cmd);
    pending_writes_.emplace(cid, std::move(pw));
    r2t_queue_.push_back(cid);
    sendNextR2Ts();
    return;
  }
  if (!pdu.data.empty()) {
    respond(cid, withStatus(kScInvalidField), 0);  // in-capsule data on a command that takes none
    return;
  }
  if (dir == 2 && cmd.transfer_len > 0 && cmd.sqe.sglId() != kSglTransportDataBlock) {
    respond(cid, withStatus(kScSglInvalidDescriptorType), 0);
    return;
  }
  execute(cmd);
}

// Gives waiting writes their buffer and R2T while fewer than
// max_r2t_per_queue are being received.
void TargetConnection::sendNextR2Ts() {
  const uint32_t max = std::max<uint32_t>(1, target_.config().limits.max_r2t_per_queue);
  while (r2t_in_flight_ < max && !r2t_queue_.empty() && state_ != State::kClosed) {
    uint16_t cid = r2t_queue_.front();
    r2t_queue_.pop_front();
    auto it = pending_writes_.find(cid);
    if (it == pending_writes_.end()) continue;
    PendingWrite& pw = it->second;
    pw.cmd.data = takeWriteBuffer(pw.cmd.transfer_len);
    pw.r2t_sent = true;
    ++r2t_in_flight_;
    send(buildR2T(cid, pw.ttag, 0, pw.cmd.transfer_len, digests()));
  }
}

void TargetConnection::handleH2CData(Pdu& pdu) {
  const uint8_t* h = pdu.header.data();
  uint16_t cccid = getLe16(h + 8), ttag = getLe16(h + 10);
  uint32_t datao = getLe32(h + 12), datal = getLe32(h + 16);
  auto it = pending_writes_.find(cccid);
  if (it == pending_writes_.end()) {
    terminate(FatalError{kFesInvalidHeaderField, 8, pdu.header, "H2CData for no outstanding R2T"});
    return;
  }
  PendingWrite& pw = it->second;
  if (!pw.r2t_sent) {
    terminate(FatalError{kFesInvalidHeaderField, 8, pdu.header, "H2CData before its R2T"});
    return;
  }
  if (ttag != pw.ttag) {
    terminate(FatalError{kFesInvalidHeaderField, 10, pdu.header, "H2CData with the wrong TTAG"});
    return;
  }
  if (datal != pdu.data.size()) {
    terminate(FatalError{kFesInvalidHeaderField, 16, pdu.header, "DATAL does not match the PDU"});
    return;
  }
  if (datao != pw.received || static_cast<uint64_t>(datao) + datal > pw.cmd.transfer_len) {
    terminate(FatalError{kFesDataOutOfRange, 12, pdu.header, "H2CData outside the R2T"});
    return;
  }
  std::copy(pdu.data.begin(), pdu.data.end(), pw.cmd.data.begin() + datao);
  pw.received += datal;
  bool digest_bad = !pdu.data_digest_ok;
  parser_.recycle(std::move(pdu.data));
  if (pw.received < pw.cmd.transfer_len && !digest_bad) return;
  Command cmd = std::move(pw.cmd);
  pending_writes_.erase(it);
  --r2t_in_flight_;
  sendNextR2Ts();
  if (digest_bad) {
    respond(cmd.sqe.cid(), withStatus(kScDataTransferError), 0);
  } else {
    execute(cmd);
  }
  recycleWriteBuffer(std::move(cmd.data));
}

// Write buffers are reused: a fresh std::vector per command meant malloc
// (mmap above glibc's threshold), a zero fill, page faults and, when freed,
// munmap or an arena trim (madvise) for every large write.
std::vector<uint8_t> TargetConnection::takeWriteBuffer(uint32_t len) {
  std::vector<uint8_t> b;
  while (!spare_buffers_.empty() && b.capacity() < len) {
    b = std::move(spare_buffers_.back());
    spare_buffers_.pop_back();
  }
  // Within the capacity resize() allocates nothing, and it only zero-fills
  // the part above the buffer's last size, which H2CData overwrites anyway.
  b.resize(len);
  return b;
}

// Keeps at most max_r2t_per_queue buffers: no more than the R2T bound
// already lets this queue hold (docs/SECURITY.md).
void TargetConnection::recycleWriteBuffer(std::vector<uint8_t>&& buffer) {
  if (state_ == State::kClosed || buffer.capacity() == 0) return;
  if (spare_buffers_.size() >= std::max<uint32_t>(1, target_.config().limits.max_r2t_per_queue)) return;
  spare_buffers_.push_back(std::move(buffer));
}

void TargetConnection::execute(Command& cmd) {
  const uint16_t cid = cmd.sqe.cid();
  if (cmd.sqe.opcode() == kFabricsCommand) {
    handleFabrics(cmd);
    return;
  }
  if (qid_ != 0 && cmd.sqe.opcode() == kIoFlush) return deferToSyncWorker(cmd);
  Completion c = qid_ == 0 ? controller_->admin(cmd) : controller_->io(cmd);
  if (c.deferred) return;
  respond(cid, c, cmd.transfer_len);
}

// A Flush waits for fdatasync (milliseconds): on the target's sync worker,
// so that the poll group serves its other commands meanwhile. The command
// stays outstanding (SQSIZE, CID) until its answer is back on this loop.
void TargetConnection::deferToSyncWorker(const Command& cmd) {
  const uint16_t cid = cmd.sqe.cid();
  deferred_cids_.insert(cid);
  std::weak_ptr<TargetConnection> weak = shared_from_this();
  PollGroup* group = &group_;
  target_.syncWorker().submit([weak, group, controller = controller_, sqe = cmd.sqe, qid = cmd.qid, cid] {
    Command c;
    c.sqe = sqe;
    c.qid = qid;
    Completion done = controller->io(c);
    group->loop.post([weak, cid, done] {
      if (auto self = weak.lock()) self->finishDeferred(cid, done);
    });
  });
}

void TargetConnection::finishDeferred(uint16_t cid, const Completion& c) {
  deferred_cids_.erase(cid);
  if (state_ == State::kClosed) return;
  respond(cid, c, 0);
}

void TargetConnection::handleFabrics(Command& cmd) {
  const uint16_t cid = cmd.sqe.cid();
  switch (cmd.sqe.fctype()) {
    case kFctConnect: {
      if (connected_) return respond(cid, withStatus(kScCommandSequenceError), 0);
      if (cmd.data.size() != kConnectDataSize) return respond(cid, withStatus(kScSglDataLengthInvalid), 0);
      auto outcome = target_.connect(cmd, local_addr_, remote_, group_, shared_from_this());
      if (outcome.controller) {
        controller_ = outcome.controller;
        qid_ = getLe16(cmd.sqe.b + 42);
        sq_size_ = getLe16(cmd.sqe.b + 44) + 1u;
        sq_flow_disabled_ = cmd.sqe.b[46] & kCattrDisableSqFlow;
        connected_ = true;
        ParserLimits limits = parser_.limits();
        limits.max_capsule_data = qid_ == 0 ? kAdminCapsuleData : target_.config().limits.in_capsule_data;
        parser_.setLimits(limits);
        if (outcome.auth) {
          auth_ = std::make_unique<auth::TargetAuthSession>(*outcome.auth, controller_->hostNqn(),
                                                            controller_->subsystemNqn(), target_.config().dhchap);
          armAuthDeadline(target_.config().limits.connect_timeout_ms, "no successful authentication in time");
        }
        if (qid_ == 0) {
          std::weak_ptr<TargetConnection> weak = shared_from_this();
          PollGroup* group = &group_;
          controller_->setEventSink([weak, group](uint16_t aer_cid, uint32_t dw0) {
            group->loop.post([weak, aer_cid, dw0] {
              if (auto self = weak.lock()) self->completeEvent(aer_cid, dw0);
            });
          });
          armKeepAlive();
        }
      }
      respond(cid, outcome.completion, 0);
      return;
    }
    case kFctPropertyGet:
      if (qid_ != 0) return respond(cid, withStatus(kScInvalidField), 0);
      controller_->touch();
      return respond(cid, controller_->propertyGet(cmd.sqe), 0);
    case kFctPropertySet:
      if (qid_ != 0) return respond(cid, withStatus(kScInvalidField), 0);
      controller_->touch();
      return respond(cid, controller_->propertySet(cmd.sqe), 0);
    case kFctAuthSend:
    case kFctAuthReceive: return handleAuth(cmd);
    case kFctDisconnect: {
      respond(cid, Completion{}, 0);
      flushOutput();
      close("host disconnected the queue");
      return;
    }
    default: return respond(cid, withStatus(kScInvalidOpcode), 0);
  }
}

void TargetConnection::handleAuth(Command& cmd) {
  const uint16_t cid = cmd.sqe.cid();
  // No secret for this host: nothing to authenticate against.
  if (!auth_) return respond(cid, withStatus(kScInvalidField | kStatusDnr), 0);
  const bool was = auth_->authenticated();
  Completion c;
  if (cmd.sqe.fctype() == kFctAuthSend) {
    c.status = auth_->send(cmd.sqe, cmd.data);
  } else {
    auto r = auth_->receive(cmd.sqe);
    c.status = r.status;
    c.data = std::move(r.data);
  }
  respond(cid, c, cmd.transfer_len);
  if (auth_->authenticated() && !was) {
    if (auth_timer_) group_.loop.cancelTimer(auth_timer_);
    auth_timer_ = 0;
    spdlog::info("nvme/tcp: host {} authenticated queue {} of controller {} (DH-HMAC-CHAP, {}, {})",
                 controller_->hostNqn(), qid_, controller_->cntlid(), auth::hashName(auth_->hash()),
                 auth::dhGroupName(auth_->dhgroup()));
  } else if (auth_->failed()) {
    spdlog::warn("nvme/tcp: host {} failed DH-HMAC-CHAP on queue {} of controller {}: {}", controller_->hostNqn(), qid_,
                 controller_->cntlid(), auth_->lastError());
    // The queue stays unusable; it is closed shortly, after the host has
    // had the time to read its AUTH_Failure1.
    armAuthDeadline(1000, "authentication failed");
  }
}

void TargetConnection::armAuthDeadline(uint32_t ms, const char* why) {
  if (auth_timer_) group_.loop.cancelTimer(auth_timer_);
  std::weak_ptr<TargetConnection> weak = shared_from_this();
  std::string reason = why;
  auth_timer_ = group_.loop.addTimer(std::chrono::milliseconds(ms), [weak, reason] {
    auto self = weak.lock();
    if (!self || self->state_ == State::kClosed) return;
    self->auth_timer_ = 0;
    if (!self->authPending()) return;
    spdlog::warn("nvme/tcp: closing queue {} of {}: {}", self->qid_, self->peer_, reason);
    self->close(reason);
  });
}

void TargetConnection::respond(uint16_t cid, const Completion& c, uint32_t transfer_len) {
  if (state_ == State::kClosed) return;
  bool sent_success = false;
  // Controller-to-host data goes out by reference from one buffer: a read's
  // own (no copy), or a copy of an admin command's few KiB.
  std::shared_ptr<const IoBuffer> payload = c.payload;
  if (!payload && !c.data.empty()) {
    auto copy = acquireIoBuffer(c.data.size());
    std::memcpy(copy->data(), c.data.data(), c.data.size());
    payload = std::move(copy);
  }
  if (c.status == kScSuccess && payload && payload->size > 0) {
    size_t total = std::min<size_t>(payload->size, transfer_len);
    for (size_t off = 0; off < total; off += kC2HChunk) {
      size_t n = std::min(kC2HChunk, total - off);
      bool last = off + n == total;
      bool success = last && sq_flow_disabled_;
      OutPdu pdu;
      pdu.bytes =
          buildDataHead(kC2HData, cid, 0, static_cast<uint32_t>(off), n, last, success, digests(), host_alignment_);
      pdu.completion = success;
      pdu.ref = payload;
      pdu.ref_off = off;
      pdu.ref_len = n;
      if (data_digest_) {
        putLe32(pdu.ddgst, dataDigest(payload->data() + off, n));
        pdu.ddgst_len = 4;
      }
      send(std::move(pdu));
      sent_success = success;
    }
  }
  if (!sent_success) {
    Cqe cqe = Cqe::make(cid, c.status, c.dw0, sq_head_, qid_, c.dw1);
    send(buildCapsuleResp(cqe, digests()), /*completion=*/true);
  }
}

void TargetConnection::completeEvent(uint16_t cid, uint32_t dw0) {
  Completion c;
  c.dw0 = dw0;
  respond(cid, c, 0);
}

void TargetConnection::armKeepAlive() {
  std::weak_ptr<TargetConnection> weak = shared_from_this();
  keepalive_timer_ = group_.loop.addTimer(std::chrono::milliseconds(500), [weak] {
    auto self = weak.lock();
    if (!self || self->state_ == State::kClosed) return;
    self->keepalive_timer_ = 0;
    if (self->controller_->keepAliveExpired()) {
      spdlog::warn("controller {}: keep-alive timeout ({} ms), ending the association", self->controller_->cntlid(),
                   self->controller_->katoMs());
      self->close("keep-alive timeout");
      return;
    }
    self->armKeepAlive();
  });
}

void TargetConnection::terminate(const FatalError& e) {
  spdlog::warn("nvme/tcp: terminating connection: {} (FES {}, FEI {})", e.reason, e.fes, e.fei);
  // Replies not yet started are dropped so that the TermReq goes next.
  size_t keep = out_offset_ > 0 ? 1 : 0;
  while (out_.size() > keep) {
    out_bytes_ -= out_.back().size();
    if (out_.back().completion) --unsent_completions_;
    out_.pop_back();
  }
  send(buildTermReq(kC2HTermReq, e.fes, e.fei, e.header));
  flushOutput();
  if (state_ != State::kClosed && out_.empty()) {
    // A FIN after the TermReq, not a reset: closing with unread commands in
    // the receive queue would send an RST, and a host whose stack takes the
    // RST first never reads the TermReq. What the host already sent is
    // discarded (bounded: a host still sending gets its reset).
    ::shutdown(fd_, SHUT_WR);
    uint8_t sink[16384];
    for (int i = 0; i < 64 && ::read(fd_, sink, sizeof sink) > 0; ++i) {}
  }
  close("fatal transport error: " + e.reason);
}

void TargetConnection::send(std::vector<uint8_t> bytes, bool completion) {
  OutPdu pdu;
  pdu.bytes = std::move(bytes);
  pdu.completion = completion;
  send(std::move(pdu));
}

void TargetConnection::send(OutPdu pdu) {
  if (state_ == State::kClosed) return;
  out_bytes_ += pdu.size();
  if (pdu.completion) ++unsent_completions_;
  out_.push_back(std::move(pdu));
  if (!want_write_ && batching_ == 0) flushOutput();  // else at the end of the batch (ReplyBatch)
}

int TargetConnection::OutPdu::iovecs(size_t skip, iovec* iov) const {
  int n = 0;
  auto part = [&](const uint8_t* p, size_t len) {
    if (skip >= len) {
      skip -= len;
      return;
    }
    iov[n].iov_base = const_cast<uint8_t*>(p + skip);  // sendmsg does not write through it
    iov[n].iov_len = len - skip;
    skip = 0;
    ++n;
  };
  part(bytes.data(), bytes.size());
  if (ref_len > 0) part(ref->data() + ref_off, ref_len);
  if (ddgst_len > 0) part(ddgst, ddgst_len);
  return n;
}

void TargetConnection::flushOutput() {
  constexpr int kMaxIov = 192;  // 64 PDUs of up to 3 parts
  while (!out_.empty() && state_ != State::kClosed) {
    iovec iov[kMaxIov];
    int n = 0;
    size_t skip = out_offset_;
    for (auto it = out_.begin(); it != out_.end() && n + 3 <= kMaxIov; ++it) {
      n += it->iovecs(skip, iov + n);
      skip = 0;
    }
    // MSG_NOSIGNAL: an initiator that died (kill -9 of a node's disk
    // service) must cost its connection, not the gateway (SIGPIPE).
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<size_t>(n);
    ssize_t w = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (!want_write_) {
          want_write_ = true;
          updateInterest();
        }
        return;
      }
      close(std::string("write: ") + std::strerror(errno));
      return;
    }
    size_t left = static_cast<size_t>(w);
    out_bytes_ -= left;
    while (left > 0 && !out_.empty()) {
      size_t avail = out_.front().size() - out_offset_;
      if (left >= avail) {
        left -= avail;
        if (out_.front().completion) --unsent_completions_;
        out_.pop_front();
        out_offset_ = 0;
      } else {
        out_offset_ += left;
        left = 0;
      }
    }
  }
  if (want_write_ && out_.empty() && state_ != State::kClosed) {
    want_write_ = false;
    updateInterest();
  }
}

void TargetConnection::close(const std::string& why) {
  if (state_ == State::kClosed) return;
  auto self = shared_from_this();
  state_ = State::kClosed;
  spdlog::debug("nvme/tcp: closing queue {} of controller {}: {}", qid_, controller_ ? controller_->cntlid() : 0, why);
  if (keepalive_timer_) group_.loop.cancelTimer(keepalive_timer_);
  if (connect_timer_) group_.loop.cancelTimer(connect_timer_);
  if (auth_timer_) group_.loop.cancelTimer(auth_timer_);
  group_.loop.unwatchFd(fd_);
  ::close(fd_);
  if (connected_) target_.queueClosed(controller_->cntlid(), qid_);
  target_.connectionClosed(peer_);
  group_.connections.erase(fd_);
  fd_ = -1;
}

}  // namespace offcore::nvme
