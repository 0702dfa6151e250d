#include "nvme/host/queue.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace offcore::nvme {
namespace {

constexpr size_t kReadChunk = 65536;

Status readExactly(int fd, uint8_t* buf, size_t len, int timeout_ms) {
  size_t got = 0;
  while (got < len) {
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, timeout_ms);
    if (r == 0) return makeError("timed out waiting for the target", kQueueTimedOut);
    if (r < 0) {
      if (errno == EINTR) continue;
      return errnoError("poll");
    }
    ssize_t n = ::read(fd, buf + got, len - got);
    if (n == 0) return makeError("the target closed the connection", kQueueDisconnected);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return errnoError("read");
    }
    got += static_cast<size_t>(n);
  }
  return okStatus();
}

}  // namespace

HostQueue::HostQueue(QueueOptions options) : options_(std::move(options)) {
  for (uint32_t i = 0; i < options_.depth; ++i) free_cids_.push_back(static_cast<uint16_t>(options_.depth - 1 - i));
  async_slots_.resize(options_.depth);
}

HostQueue::~HostQueue() { close(); }

Status HostQueue::open() {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd_ < 0) return errnoError("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(options_.port);
  if (::inet_pton(AF_INET, options_.address.c_str(), &addr.sin_addr) != 1) {
    return makeError("bad target address '" + options_.address + "'");
  }
  std::string where = options_.address + ":" + std::to_string(options_.port);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 && errno != EINPROGRESS) {
    return errnoError("connect " + where);
  }
  pollfd p{fd_, POLLOUT, 0};
  int r = ::poll(&p, 1, static_cast<int>(options_.connect_timeout.count()));
  int err = 0;
  socklen_t len = sizeof err;
  ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
  if (r <= 0 || err != 0) {
    return makeError("connect " + where + ": " + (r == 0 ? std::string("timed out") : std::strerror(err)),
                     kQueueDisconnected);
  }
  // Blocking from here on: the reader thread owns reads, senders hold send_mutex_.
  ::fcntl(fd_, F_SETFL, 0);
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

  uint8_t dgst = (options_.header_digest ? kHdgstEnable : 0) | (options_.data_digest ? kDdgstEnable : 0);
  OC_TRY(sendAll(buildIcReq(/*hpda=*/0, dgst, /*maxr2t=*/0)));
  uint8_t resp[kIcHlen];
  OC_TRY(readExactly(fd_, resp, sizeof resp, static_cast<int>(options_.connect_timeout.count())));
  if (resp[0] != kIcResp || resp[2] != kIcHlen || getLe32(resp + 4) != kIcHlen) {
    return makeError("the target did not answer ICReq with an ICResp");
  }
  if (getLe16(resp + 8) != 0) return makeError("the target speaks an unknown PDU format version");
  uint8_t granted = resp[11];
  if ((granted & ~dgst) != 0) return makeError("the target enabled digests we did not ask for");
  digests_ = Digests{(granted & kHdgstEnable) != 0, (granted & kDdgstEnable) != 0};
  ctrl_alignment_ = (resp[10] + 1u) * 4u;
  max_h2c_data_ = getLe32(resp + 12);
  if (max_h2c_data_ < 4096) return makeError("the target's MAXH2CDATA is below 4096");
  ParserLimits limits;
  limits.header_digest = digests_.header;
  limits.data_digest = digests_.data;
  limits.data_alignment = 4;  // our HPDA 0
  limits.max_data_pdu = 16 << 20;
  limits.max_capsule_data = 0;
  parser_.setLimits(limits);
  alive_ = true;
  if (options_.polled) {
    ::fcntl(fd_, F_SETFL, O_NONBLOCK);  // the poller's reads must not block it
    poll_buf_.reset(new uint8_t[kReadChunk]);
  } else {
    reader_ = std::thread([this] { readerLoop(); });
  }
  return okStatus();
}

void HostQueue::close() {
  bool was = alive_.exchange(false);
  if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
  if (reader_.joinable() && reader_.get_id() != std::this_thread::get_id()) reader_.join();
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  (void)was;
  failAll();
}

void HostQueue::shutdown() {
  alive_ = false;
  if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
  // Synchronous callers give up now; asynchronous commands are failed by
  // the poller, which owns them.
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& [_, p] : pending_) {
    if (p->waiter == nullptr) p->cv.notify_one();
  }
  cv_.notify_all();
}

Status HostQueue::sendAll(const std::vector<uint8_t>& bytes) {
  std::lock_guard<std::mutex> lock(send_mutex_);
  return sendAllLocked(bytes);
}

Status HostQueue::sendAllLocked(const std::vector<uint8_t>& bytes) {
  if (corked_) {
    held_.insert(held_.end(), bytes.begin(), bytes.end());
    return okStatus();
  }
  return writeAllLocked(bytes.data(), bytes.size());
}

void HostQueue::cork() {
  std::lock_guard<std::mutex> lock(send_mutex_);
  corked_ = true;
}

void HostQueue::uncork() {
  std::lock_guard<std::mutex> lock(send_mutex_);
  corked_ = false;
  if (held_.empty()) return;
  Status sent = writeAllLocked(held_.data(), held_.size());
  held_.clear();
  if (held_.capacity() > kHeldKeepBytes) held_.shrink_to_fit();  // a burst of in-capsule writes
  // Commands already counted as sent are in pending_: lose the connection
  // the way a peer would, and the poller fails them to their waiters.
  if (!sent.ok() && fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
}

Status HostQueue::writeAllLocked(const uint8_t* data, size_t len) {
  size_t off = 0;
  while (off < len) {
    ssize_t n = ::send(fd_, data + off, len - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        // Polled mode: a full send buffer. The target reads on (the read
        // data in flight is bounded), and shutdown() ends this wait.
        pollfd p{fd_, POLLOUT, 0};
        (void)::poll(&p, 1, 100);
        if (!alive_) return makeError("queue disconnected", kQueueDisconnected);
        continue;
      }
      return makeError(std::string("send: ") + std::strerror(errno), kQueueDisconnected);
    }
    off += static_cast<size_t>(n);
  }
  return okStatus();
}

namespace {

// The SGL descriptor of a command with data (in-capsule or transport data
// block), and the PSDT bits that say "SGL".
void describeData(Sqe& sqe, size_t len, bool in_capsule) {
  putLe64(sqe.b + kSqeSgl, 0);
  putLe32(sqe.b + kSqeSgl + 8, static_cast<uint32_t>(len));
  sqe.b[kSqeSgl + 15] = in_capsule ? kSglDataBlockOffset : kSglTransportDataBlock;
  sqe.b[1] = static_cast<uint8_t>((sqe.b[1] & 0x3F) | 0x40);  // PSDT: SGL
}

}  // namespace

HostQueue::Pending* HostQueue::claimLocked(const Deferred& d, uint16_t* cid) {
  *cid = free_cids_.back();
  free_cids_.pop_back();
  auto& slot = async_slots_[*cid];
  if (!slot) slot = std::make_unique<Pending>();
  Pending* p = slot.get();
  p->out = d.out;
  p->out_len = d.out_len;
  p->in = d.in;
  p->in_len = d.in_len;
  p->done = false;
  p->waiter = d.waiter;
  p->deadline = d.deadline;
  pending_[*cid] = p;
  read_bytes_in_flight_ += d.in_len;
  return p;
}

Status HostQueue::sendCapsule(Sqe sqe, uint16_t cid, const uint8_t* out, size_t out_len, size_t in_len) {
  putLe16(sqe.b + 2, cid);
  bool in_capsule = out_len > 0 && out_len <= options_.in_capsule_limit;
  if (out_len > 0 || in_len > 0) describeData(sqe, out_len > 0 ? out_len : in_len, in_capsule);
  return sendAll(buildCapsuleCmd(sqe, in_capsule ? out : nullptr, in_capsule ? out_len : 0, digests_, ctrl_alignment_));
}

Status HostQueue::sendClaimed(const Deferred& d, uint16_t cid, Pending* p) {
  Status sent = sendCapsule(d.sqe, cid, d.out, d.out_len, d.in_len);
  if (sent.ok()) return okStatus();
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = pending_.find(cid);
  // Already failed to its waiter by a closing queue: that call is the answer.
  if (it == pending_.end() || it->second != p) return okStatus();
  (void)retireAsyncLocked(cid, p);
  return sent;
}

bool HostQueue::canStartLocked(const Deferred& d) const {
  if (free_cids_.empty()) return false;
  if (!options_.polled) return true;
  return d.in_len == 0 || read_bytes_in_flight_ == 0 || read_bytes_in_flight_ + d.in_len <= kPolledReadBytes;
}

Status HostQueue::submitAsync(Sqe sqe, const uint8_t* out, size_t out_len, uint8_t* in, size_t in_len,
                              std::chrono::steady_clock::time_point deadline, HostQueueWaiter* waiter) {
  Deferred d{sqe, out, out_len, in, in_len, deadline, waiter};
  uint16_t cid;
  Pending* p;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    if (options_.polled) {
      // Never block the poller: what cannot start now waits its turn.
      if (!alive_) return makeError("queue disconnected", kQueueDisconnected);
      if (!backlog_.empty() || !canStartLocked(d)) {
        backlog_.push_back(d);
        return okStatus();
      }
    } else {
      if (!cv_.wait_until(lock, deadline, [&] { return !free_cids_.empty() || !alive_; })) {
        return makeError("no free queue slot", kQueueTimedOut);
      }
      if (!alive_) return makeError("queue disconnected", kQueueDisconnected);
    }
    p = claimLocked(d, &cid);
  }
  return sendClaimed(d, cid, p);
}

void HostQueue::startBacklog() {
  for (;;) {
    Deferred d;
    uint16_t cid;
    Pending* p;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (backlog_.empty() || !alive_ || !canStartLocked(backlog_.front())) return;
      d = backlog_.front();
      backlog_.pop_front();
      p = claimLocked(d, &cid);
    }
    Status sent = sendClaimed(d, cid, p);
    if (!sent.ok()) {
      Error why = sent.error();
      d.waiter->completed(nullptr, &why);
      return;
    }
  }
}

HostQueueWaiter* HostQueue::retireAsyncLocked(uint16_t cid, Pending* p) {
  HostQueueWaiter* w = p->waiter;
  p->waiter = nullptr;
  read_bytes_in_flight_ -= std::min(read_bytes_in_flight_, p->in_len);
  pending_.erase(cid);
  free_cids_.push_back(cid);
  cv_.notify_one();  // a submitter waiting for a free slot
  return w;
}

bool HostQueue::overdue(std::chrono::steady_clock::time_point now) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& [_, p] : pending_) {
    if (p->waiter != nullptr && p->deadline < now) return true;
  }
  for (const auto& d : backlog_) {
    if (d.deadline < now) return true;
  }
  return false;
}

Result<HostCompletion> HostQueue::submit(Sqe sqe, const uint8_t* out, size_t out_len, uint8_t* in, size_t in_len,
                                         std::chrono::milliseconds timeout) {
  Pending pending;
  pending.out = out;
  pending.out_len = out_len;
  pending.in = in;
  pending.in_len = in_len;
  uint16_t cid;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    if (!cv_.wait_for(lock, timeout, [&] { return !free_cids_.empty() || !alive_; })) {
      return makeError("no free queue slot", kQueueTimedOut);
    }
    if (!alive_) return makeError("queue disconnected", kQueueDisconnected);
    cid = free_cids_.back();
    free_cids_.pop_back();
    pending_[cid] = &pending;
  }
  Status sent = sendCapsule(sqe, cid, out, out_len, in_len);
  if (sent.ok() && options_.polled && !poller_attached_) {
    // Polled, before a poller took the queue (Connect, authentication):
    // the caller is the only user, so it reads the answer itself.
    auto until = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (pending.done || !alive_) break;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) > 0 && readSome(poll_buf_.get(), kReadChunk) < 0) {
        alive_ = false;
      }
    }
  }
  std::unique_lock<std::mutex> lock(mutex_);
  if (sent.ok()) pending.cv.wait_for(lock, timeout, [&] { return pending.done || !alive_; });
  pending_.erase(cid);
  free_cids_.push_back(cid);
  cv_.notify_one();  // a caller waiting for a free slot
  if (pending.done) return HostCompletion{pending.cqe};
  if (!sent.ok()) return sent.error();
  if (!alive_) return makeError("queue disconnected", kQueueDisconnected);
  return makeError("command timed out after " + std::to_string(timeout.count()) + " ms", kQueueTimedOut);
}

void HostQueue::failAll() {
  std::vector<HostQueueWaiter*> lost;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<std::pair<uint16_t, Pending*>> async;
    for (auto& [cid, p] : pending_) {
      if (p->waiter != nullptr) {
        async.emplace_back(cid, p);
      } else {
        p->cv.notify_one();
      }
    }
    for (auto& [cid, p] : async) lost.push_back(retireAsyncLocked(cid, p));
    for (auto& d : backlog_) lost.push_back(d.waiter);
    backlog_.clear();
    cv_.notify_all();
  }
  if (lost.empty()) return;
  Error why = makeError("queue disconnected", kQueueDisconnected);
  for (HostQueueWaiter* w : lost) w->completed(nullptr, &why);
}

ssize_t HostQueue::readSome(uint8_t* buf, size_t cap) {
  ssize_t n = ::read(fd_, buf, cap);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return 0;
  if (n <= 0) return -1;
  parser_.feed(buf, static_cast<size_t>(n));
  for (;;) {
    std::optional<FatalError> error;
    auto pdu = parser_.next(error);
    if (error) {
      // A malformed PDU from the target: tell it why (best effort: the
      // queue is dropped whether or not the TermReq gets out).
      (void)sendAll(buildTermReq(kH2CTermReq, error->fes, error->fei, error->header));
      return -1;
    }
    if (!pdu) break;
    handlePdu(*pdu);
  }
  return alive_ ? n : -1;
}

void HostQueue::readerLoop() {
  uint8_t buf[kReadChunk];
  while (alive_ && readSome(buf, sizeof buf) >= 0) {}
  alive_ = false;
  failAll();
}

bool HostQueue::pollRead() {
  if (fd_ < 0) return false;
  ssize_t n = alive_ ? 0 : -1;
  // Until the socket is drained, but at most a few reads per call, so one
  // busy queue does not starve the poller's other work.
  for (int i = 0; n >= 0 && i < 4; ++i) {
    n = readSome(poll_buf_.get(), kReadChunk);
    if (n < static_cast<ssize_t>(kReadChunk)) break;
  }
  if (n < 0) {
    alive_ = false;
    failAll();
    return false;
  }
  startBacklog();
  return alive_;
}

void HostQueue::handlePdu(const Pdu& pdu) {
  const uint8_t* h = pdu.header.data();
  switch (pdu.type) {
    case kCapsuleResp: {
      Cqe cqe;
      std::memcpy(cqe.b, h + kCommonHeaderSize, kCqeSize);
      HostQueueWaiter* w = nullptr;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        auto it = pending_.find(cqe.cid());
        if (it == pending_.end()) return;  // a late answer to a command that timed out
        if (it->second->waiter != nullptr) {
          w = retireAsyncLocked(cqe.cid(), it->second);
        } else {
          it->second->cqe = cqe;
          it->second->done = true;
          it->second->cv.notify_one();
        }
      }
      if (w != nullptr) w->completed(&cqe, nullptr);
      return;
    }
    case kC2HData: {
      uint16_t cid = getLe16(h + 8);
      uint32_t off = getLe32(h + 12), len = getLe32(h + 16);
      HostQueueWaiter* w = nullptr;
      Cqe cqe;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        auto it = pending_.find(cid);
        if (it == pending_.end()) return;
        Pending* p = it->second;
        bool bad = !pdu.data_digest_ok || static_cast<uint64_t>(off) + len > p->in_len || len != pdu.data.size();
        if (!bad) std::memcpy(p->in + off, pdu.data.data(), len);
        if (!bad && !(pdu.flags & kFlagSuccess)) return;
        cqe = Cqe::make(cid, bad ? kScDataTransferError : kScSuccess);
        if (p->waiter != nullptr) {
          w = retireAsyncLocked(cid, p);
        } else {
          p->cqe = cqe;
          p->done = true;
          p->cv.notify_one();
        }
      }
      if (w != nullptr) w->completed(&cqe, nullptr);
      return;
    }
    case kR2T: {
      uint16_t cid = getLe16(h + 8), ttag = getLe16(h + 10);
      uint32_t off = getLe32(h + 12), len = getLe32(h + 16);
      const uint8_t* data = nullptr;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        auto it = pending_.find(cid);
        if (it == pending_.end() || static_cast<uint64_t>(off) + len > it->second->out_len) return;
        data = it->second->out;
      }
      // The caller blocks until completion, so data stays valid while we send.
      std::lock_guard<std::mutex> lock(send_mutex_);
      for (uint32_t done = 0; done < len;) {
        uint32_t n = std::min(len - done, max_h2c_data_);
        bool last = done + n == len;
        // Straight out, corked or not: its command is on the wire already
        // (the R2T answers it), and held it would be a second copy of up
        // to a transfer's worth of data per R2T.
        auto pdu =
            buildData(kH2CData, cid, ttag, off + done, data + off + done, n, last, false, digests_, ctrl_alignment_);
        if (!writeAllLocked(pdu.data(), pdu.size()).ok()) {
          return;
        }
        done += n;
      }
      return;
    }
    case kC2HTermReq: alive_ = false; return;
    default: return;
  }
}

}  // namespace offcore::nvme
