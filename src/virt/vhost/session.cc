// What each vhost-user request does (see session.h).
#include "virt/vhost/session.h"

#include <linux/vhost_types.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "base/log.h"
#include "virt/vhost/packed_inflight.h"

namespace offcore::virt {
namespace {

constexpr uint64_t bit(unsigned n) { return 1ull << n; }
constexpr uint32_t kMaxVringSize = 32768;

std::vector<uint8_t> noReply() { return {}; }

}  // namespace

uint64_t transportFeatures() {
  return bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_RING_F_INDIRECT_DESC) | bit(VIRTIO_RING_F_EVENT_IDX) |
         bit(VHOST_F_LOG_ALL) | bit(kFProtocolFeatures);
}

uint64_t offeredProtocolFeatures() {
  return bit(kProtoMq) | bit(kProtoLogShmfd) | bit(kProtoReplyAck) | bit(kProtoConfig) | bit(kProtoInflightShmfd);
}

uint64_t Session::offeredFeatures() const {
  uint64_t f = device_.deviceFeatures() | transportFeatures();
  if (device_.packedRing()) f |= bit(VIRTIO_F_RING_PACKED);
  return f;
}

Session::Session(VhostDevice& device) : device_(device) {
  for (uint16_t i = 0; i < device.maxQueues(); ++i) vrings_.push_back(std::make_unique<Vring>(i, device));
}

Session::~Session() { stopAll(); }

void Session::stopAll() {
  for (auto& q : vrings_) q->stop();
}

Result<Vring*> Session::vring(uint32_t index) {
  if (index >= vrings_.size()) {
    return makeError("queue " + std::to_string(index) + " does not exist (the device has " +
                     std::to_string(vrings_.size()) + "); start the back end with more queues");
  }
  return vrings_[index].get();
}

DirtyLog* Session::activeLog() const { return (features_ & bit(VHOST_F_LOG_ALL)) ? log_.get() : nullptr; }

Status Session::startIfReady(Vring& q) {
  // Without PROTOCOL_FEATURES a ring is enabled from the start; with them it
  // waits for SET_VRING_ENABLE (vhost-user spec, "Ring states").
  const bool enabled = (features_ & bit(kFProtocolFeatures)) ? q.enabled : true;
  if (q.running() || !q.configured() || !enabled || !memory_) return okStatus();
  return q.start(*memory_, activeLog(), features_);
}

Status Session::startAllReady() {
  for (auto& q : vrings_) OC_TRY(startIfReady(*q));
  return okStatus();
}

Result<std::vector<uint8_t>> Session::handle(Message msg) {
  const auto request = static_cast<uint32_t>(msg.request);
  const bool ack = msg.needReply() && (protocolFeatures_ & bit(kProtoReplyAck));
  auto reply = dispatch(msg);
  if (!reply.ok() && ack && !repliesItself(msg.request)) {
    // REPLY_ACK: the front end asked to hear about a failure, so it gets a
    // non-zero answer and decides (QEMU fails the operation; it may reset
    // the device or reconnect). Whatever the request changed before it
    // failed is safe to keep: at worst the queues it touched stay stopped.
    spdlog::warn("vhost-user: {} failed: {}; answered the front end with an error", requestName(request),
                 reply.error().message);
    return encodeU64Reply(request, 1);
  }
  if (!reply.ok()) return reply.error().wrap(requestName(request));
  // REPLY_ACK: requests without a reply of their own confirm with a u64 0.
  if (ack && reply->empty()) return encodeU64Reply(request, 0);
  return reply;
}

Result<std::vector<uint8_t>> Session::dispatch(Message& msg) {
  const auto request = static_cast<uint32_t>(msg.request);
  switch (msg.request) {
    case Request::kGetFeatures: return encodeU64Reply(request, offeredFeatures());
    case Request::kSetFeatures: {
      const uint64_t offered = offeredFeatures();
      if (msg.u64 & ~offered) return makeError("the front end acked features that were not offered");
      stopAll();
      if (msg.u64 != features_) {
        spdlog::info("vhost-user: features 0x{:x}{}", msg.u64,
                     (msg.u64 & bit(VHOST_F_LOG_ALL)) ? " (dirty logging on)" : "");
      }
      features_ = msg.u64;
      OC_TRY(device_.setFeatures(features_));
      OC_TRY(startAllReady());
      return noReply();
    }
    case Request::kGetProtocolFeatures: return encodeU64Reply(request, offeredProtocolFeatures());
    case Request::kSetProtocolFeatures:
      if (msg.u64 & ~offeredProtocolFeatures()) {
        return makeError("the front end acked protocol features that were not offered");
      }
      protocolFeatures_ = msg.u64;
      return noReply();
    case Request::kSetOwner: return noReply();
    case Request::kResetOwner:
    case Request::kResetDevice:
      for (auto& q : vrings_) q->reset();
      features_ = 0;
      log_.reset();
      inflight_.reset();
      return noReply();
    case Request::kSetMemTable: return setMemTable(msg);
    case Request::kSetLogBase: return setLogBase(msg);
    case Request::kSetLogFd: return noReply();  // the log eventfd is for front ends that poll; ours is shared memory
    case Request::kGetQueueNum: return encodeU64Reply(request, vrings_.size());
    case Request::kGetConfig: return getConfig(msg);
    case Request::kSetConfig:
      // virtio-blk's writable config (writeback cache mode) is not offered.
      return noReply();
    case Request::kGetInflightFd: return getInflightFd(msg);
    case Request::kSetInflightFd: return setInflightFd(msg);
    case Request::kSetVringKick:
    case Request::kSetVringCall:
    case Request::kSetVringErr: return setVringFd(msg);
    default: break;
  }
  // The vring-state requests.
  OC_ASSIGN_OR_RETURN(Vring * q, vring(msg.request == Request::kSetVringAddr ? msg.addr.index : msg.state.index));
  switch (msg.request) {
    case Request::kSetVringNum:
      // A packed ring may have any size up to 32768 (virtio 1.1 §2.7).
      if (msg.state.num == 0 || msg.state.num > kMaxVringSize ||
          (!(features_ & bit(VIRTIO_F_RING_PACKED)) && (msg.state.num & (msg.state.num - 1)) != 0)) {
        return makeError("queue size " + std::to_string(msg.state.num) + " is not a power of two <= 32768");
      }
      q->stop();
      q->num = msg.state.num;
      OC_TRY(startIfReady(*q));
      return noReply();
    case Request::kSetVringBase:
      // Packed: avail and used positions with their wrap counters, 16 bits each.
      if (!(features_ & bit(VIRTIO_F_RING_PACKED)) && msg.state.num > 0xffff) {
        return makeError("avail index " + std::to_string(msg.state.num) + " > 65535");
      }
      q->stop();
      q->base = msg.state.num;
      OC_TRY(startIfReady(*q));
      return noReply();
    case Request::kSetVringAddr:
      q->stop();
      q->addrs = VringAddresses{msg.addr.desc_user_addr, msg.addr.avail_user_addr, msg.addr.used_user_addr,
                                msg.addr.log_guest_addr, msg.addr.flags};
      q->hasAddrs = true;
      OC_TRY(startIfReady(*q));
      return noReply();
    case Request::kGetVringBase:
      // Stops the ring; the front end reads where to resume from.
      q->stop();
      q->started = false;
      q->kick.reset();
      return encodeStateReply(request, msg.state.index, q->base);
    case Request::kSetVringEnable:
      q->stop();
      q->enabled = msg.state.num != 0;
      OC_TRY(startIfReady(*q));
      return noReply();
    default: break;
  }
  return makeError("request not handled by this back end");
}

Result<std::vector<uint8_t>> Session::setMemTable(Message& msg) {
  for (size_t i = 0; i < msg.regions.size(); ++i) msg.regions[i].fd = msg.fds[i].release();
  auto regions = msg.regions;
  OC_ASSIGN_OR_RETURN(auto mem, GuestMemory::map(std::move(regions)));
  stopAll();  // queues hold pointers into the old table
  memory_ = std::move(mem);
  spdlog::info("vhost-user: memory table of {} regions, {} MiB", memory_->regionCount(), memory_->totalBytes() >> 20);
  OC_TRY(startAllReady());
  return noReply();
}

Result<std::vector<uint8_t>> Session::setLogBase(Message& msg) {
  if (!(protocolFeatures_ & bit(kProtoLogShmfd))) {
    return makeError("SET_LOG_BASE without LOG_SHMFD negotiated");
  }
  OC_ASSIGN_OR_RETURN(auto log, DirtyLog::map(msg.fds[0].release(), msg.log.size, msg.log.offset));
  stopAll();
  log_ = std::move(log);
  spdlog::info("vhost-user: dirty log of {} bytes mapped", msg.log.size);
  OC_TRY(startAllReady());
  // With LOG_SHMFD the front end waits for this reply before it reads the log.
  return encodeU64Reply(static_cast<uint32_t>(msg.request), 0);
}

namespace {

std::vector<uint8_t> inflightPayload(uint64_t size, uint16_t numQueues, uint16_t queueSize) {
  std::vector<uint8_t> p(24, 0);
  const uint64_t offset = 0;
  std::memcpy(p.data(), &size, 8);
  std::memcpy(p.data() + 8, &offset, 8);
  std::memcpy(p.data() + 16, &numQueues, 2);
  std::memcpy(p.data() + 18, &queueSize, 2);
  return p;
}

// Kick, call and err fds must be eventfds, and we use them non-blocking: a
// front end's blocking eventfd with a full counter, or a pipe nobody reads,
// would otherwise park a queue thread in write() for good (and stop() with
// it); a regular file would make poll() spin.
Status checkEventFd(int fd) {
  char target[64] = {};
  std::string link = "/proc/self/fd/" + std::to_string(fd);
  ssize_t n = ::readlink(link.c_str(), target, sizeof(target) - 1);
  if (n < 0 || std::strcmp(target, "anon_inode:[eventfd]") != 0) {
    return makeError("a vring kick/call/err fd that is not an eventfd");
  }
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) return errnoError("make the vring fd non-blocking");
  return okStatus();
}

}  // namespace

Result<std::vector<uint8_t>> Session::getInflightFd(const Message& msg) {
  if (!(protocolFeatures_ & bit(kProtoInflightShmfd))) {
    return makeError("GET_INFLIGHT_FD without INFLIGHT_SHMFD negotiated");
  }
  // QEMU (5.2 and later) sets the features before it asks, so the layout
  // follows the ring type the guest picked.
  const bool packed = (features_ & bit(VIRTIO_F_RING_PACKED)) != 0;
  OC_ASSIGN_OR_RETURN(auto area, InflightArea::create(msg.inflight.numQueues, msg.inflight.queueSize, packed));
  int dup = ::fcntl(area->fd(), F_DUPFD_CLOEXEC, 0);
  if (dup < 0) return errnoError("dup the inflight fd");
  replyFd_.reset(dup);
  // The front end keeps the memfd and hands it back with SET_INFLIGHT_FD,
  // now and after every reconnect: that is the mapping the queues use.
  auto payload = inflightPayload(area->size(), area->numQueues(), area->queueSize());
  return encodeReply(static_cast<uint32_t>(msg.request), payload);
}

Result<std::vector<uint8_t>> Session::setInflightFd(Message& msg) {
  if (!(protocolFeatures_ & bit(kProtoInflightShmfd))) {
    return makeError("SET_INFLIGHT_FD without INFLIGHT_SHMFD negotiated");
  }
  // The layout of the ring type now negotiated, unless the area is too small
  // for it: one handed out before the features were set is split-sized, and
  // the queues then leave it alone (Vring::start).
  bool packed = (features_ & bit(VIRTIO_F_RING_PACKED)) != 0;
  const uint64_t numQueues = msg.inflight.numQueues;
  if (packed && msg.inflight.mmapSize < packedInflightQueueBytes(msg.inflight.queueSize) * numQueues) packed = false;
  OC_ASSIGN_OR_RETURN(auto area, InflightArea::map(msg.fds[0].release(), msg.inflight.mmapSize, msg.inflight.mmapOffset,
                                                   msg.inflight.numQueues, msg.inflight.queueSize, packed));
  stopAll();  // queues hold pointers into the old area
  inflight_ = std::move(area);
  attachInflight();
  spdlog::info("vhost-user: inflight area of {} queues x {} descriptors mapped ({} layout)", inflight_->numQueues(),
               inflight_->queueSize(), inflight_->packed() ? "packed" : "split");
  OC_TRY(startAllReady());
  return noReply();
}

void Session::attachInflight() {
  for (size_t i = 0; i < vrings_.size(); ++i) {
    vrings_[i]->inflight = inflight_ ? inflight_->queue(static_cast<uint16_t>(i)) : nullptr;
    vrings_[i]->inflightQueueSize = inflight_ ? inflight_->queueSize() : 0;
    vrings_[i]->inflightPacked = inflight_ && inflight_->packed();
  }
}

Result<std::vector<uint8_t>> Session::setVringFd(Message& msg) {
  OC_ASSIGN_OR_RETURN(Vring * q, vring(msg.vringIndex));
  const bool noFd = (msg.u64 & kVringNoFd) != 0;
  UniqueFd fd = noFd ? UniqueFd() : std::move(msg.fds[0]);
  if (!noFd) OC_TRY(checkEventFd(fd.get()));
  if (msg.request == Request::kSetVringCall) {
    q->setCall(std::move(fd));
    return noReply();
  }
  q->stop();
  switch (msg.request) {
    case Request::kSetVringKick:
      if (noFd) return makeError("polled rings (SET_VRING_KICK without an fd) are not supported");
      q->kick = std::move(fd);
      q->started = true;
      break;
    default: q->err = std::move(fd); break;
  }
  OC_TRY(startIfReady(*q));
  return noReply();
}

Result<std::vector<uint8_t>> Session::getConfig(const Message& msg) {
  std::vector<uint8_t> space = device_.configSpace(static_cast<uint16_t>(vrings_.size()));
  // The reply is the request with the bytes filled in; bytes past the
  // device's config space read as zero.
  const size_t want = msg.config.data.size();
  std::vector<uint8_t> payload(12 + want, 0);
  std::memcpy(payload.data(), &msg.config.offset, 4);
  const auto size = static_cast<uint32_t>(want);
  std::memcpy(payload.data() + 4, &size, 4);
  std::memcpy(payload.data() + 8, &msg.config.flags, 4);
  for (size_t i = 0; i < want; ++i) {
    const uint64_t at = uint64_t{msg.config.offset} + i;
    if (at < space.size()) payload[12 + i] = space[at];
  }
  return encodeReply(static_cast<uint32_t>(msg.request), payload);
}

}  // namespace offcore::virt
