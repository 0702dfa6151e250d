#include "nvme/target/controller.h"

#include <algorithm>
#include <cstring>

namespace offcore::nvme {

uint16_t statusForBlockError(const Error& e, bool write) {
  switch (e.code) {
    case kBlockOutOfRange: return kScLbaOutOfRange;
    case kBlockNoSpace: return kScCapacityExceeded;
    case kBlockReadOnly: return kScNamespaceWriteProtected;
    case kBlockInvalid: return kScInvalidField;
    case kBlockIo:
    case kBlockTimedOut: return write ? kScWriteFault : kScUnrecoveredReadError;
    default: return kScInternal;
  }
}

Controller::Controller(uint16_t cntlid, std::shared_ptr<Subsystem> subsystem, std::string host_nqn,
                       std::array<uint8_t, 16> host_id, uint32_t kato_ms, const TargetLimits& limits)
    : cntlid_(cntlid),
      subsystem_(std::move(subsystem)),
      host_nqn_(std::move(host_nqn)),
      host_id_(host_id),
      limits_(limits),
      kato_ms_(kato_ms),
      last_traffic_ns_(nowNs()),
      io_queues_granted_(0) {
  features_[kFeatVolatileWriteCache] = 1;
  features_[kFeatKeepAliveTimer] = kato_ms;
}

std::shared_ptr<Controller> Controller::makeDiscovery(uint16_t cntlid, std::string host_nqn,
                                                      std::array<uint8_t, 16> host_id, uint32_t kato_ms,
                                                      const TargetLimits& limits, DiscoveryLister lister,
                                                      std::function<uint64_t()> generation) {
  auto c = std::make_shared<Controller>(cntlid, nullptr, std::move(host_nqn), host_id, kato_ms, limits);
  c->discovery_ = true;
  c->discovery_lister_ = std::move(lister);
  c->discovery_generation_ = std::move(generation);
  return c;
}

std::string Controller::subsystemNqn() const { return discovery_ ? kDiscoveryNqn : subsystem_->nqn(); }

bool Controller::keepAliveExpired() const {
  uint32_t kato = kato_ms_.load();
  if (kato == 0) return false;
  // The host sends Keep Alive at half KATO; allow the full KATO plus slack
  // for a busy machine before declaring the association dead.
  int64_t limit = static_cast<int64_t>(kato) * 1000000 + 1000000000LL;
  return nowNs() - last_traffic_ns_.load(std::memory_order_relaxed) > limit;
}

void Controller::setEventSink(EventSink sink) {
  std::lock_guard<std::mutex> lock(mutex_);
  event_sink_ = std::move(sink);
}

void Controller::notifyNamespaceChanged(uint32_t nsid) {
  EventSink sink;
  uint16_t cid = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (std::find(changed_nsids_.begin(), changed_nsids_.end(), nsid) == changed_nsids_.end()) {
      changed_nsids_.push_back(nsid);
    }
    if (!(aec_ & kAecNsAttributeNotices) || ns_event_pending_) return;
    if (aer_cids_.empty()) {
      ns_event_pending_ = true;
      undelivered_ns_event_ = true;  // delivered by the next AER
      return;
    }
    cid = aer_cids_.front();
    aer_cids_.pop_front();
    ns_event_pending_ = true;  // masked until the host reads the log page
    sink = event_sink_;
  }
  if (sink) sink(cid, kAerNoticeNsChanged);
}

// ---- properties ------------------------------------------------------------------

Completion Controller::propertyGet(const Sqe& sqe) {
  uint8_t size = sqe.b[40] & 0x7;
  uint32_t ofst = getLe32(sqe.b + 44);
  Completion c;
  switch (ofst) {
    case kPropCap: {
      if (size != 1) return withStatus(kScInvalidField);
      uint64_t cap = (limits_.max_queue_entries - 1) & 0xFFFF;
      cap |= 1ULL << 16;   // CQR: queues must be contiguous
      cap |= 30ULL << 24;  // TO: 15 s, in 500 ms units
      cap |= 1ULL << 37;   // CSS: NVM command set
      c.dw0 = static_cast<uint32_t>(cap);
      c.dw1 = static_cast<uint32_t>(cap >> 32);
      return c;
    }
    case kPropVs: c.dw0 = 0x00010300; break;  // 1.3
    case kPropCc: c.dw0 = cc_.load(); break;
    case kPropCsts: c.dw0 = csts_.load(); break;
    default: return withStatus(kScInvalidField);
  }
  if (size != 0) return withStatus(kScInvalidField);
  return c;
}

Completion Controller::propertySet(const Sqe& sqe) {
  uint8_t size = sqe.b[40] & 0x7;
  uint32_t ofst = getLe32(sqe.b + 44);
  uint64_t value = getLe64(sqe.b + 48);
  if (ofst != kPropCc || size != 0) return withStatus(kScInvalidField);
  uint32_t cc = static_cast<uint32_t>(value);
  uint32_t old = cc_.exchange(cc);
  uint32_t csts = csts_.load();
  if ((cc & kCcEnable) && !(old & kCcEnable)) {
    // I/O queue entry sizes must be 64/16 bytes when enabling.
    uint32_t iosqes = (cc >> 16) & 0xF, iocqes = (cc >> 20) & 0xF;
    if (!discovery_ && (iosqes != 6 || iocqes != 4)) {
      csts |= 1 << 1;  // CFS
    } else {
      csts |= kCstsReady;
    }
  } else if (!(cc & kCcEnable) && (old & kCcEnable)) {
    csts &= ~kCstsReady;
  }
  if ((cc >> kCcShnShift) & 0x3) csts = (csts & ~(3u << 2)) | kCstsShstComplete;
  csts_.store(csts);
  return Completion{};
}

// ---- admin -------------------------------------------------------------------------

Completion Controller::admin(const Command& cmd) {
  touch();
  const uint8_t op = cmd.sqe.opcode();
  if (discovery_) {
    switch (op) {
      case kAdminIdentify:
      case kAdminGetLogPage:
      case kAdminKeepAlive:
      case kAdminSetFeatures:
      case kAdminGetFeatures:
      case kAdminAsyncEventRequest: break;
      default: return withStatus(kScInvalidOpcode);
    }
  }
  if (!ready() && op != kAdminKeepAlive) return withStatus(kScCommandSequenceError);
  switch (op) {
    case kAdminIdentify: return identify(cmd);
    case kAdminGetLogPage: return getLogPage(cmd);
    case kAdminSetFeatures: return setFeatures(cmd);
    case kAdminGetFeatures: return getFeatures(cmd);
    case kAdminAsyncEventRequest: return asyncEventRequest(cmd);
    case kAdminKeepAlive: return Completion{};
    case kAdminAbort: {
      Completion c;
      c.dw0 = 1;  // not aborted: commands here complete without queueing
      return c;
    }
    default: return withStatus(kScInvalidOpcode);
  }
}

Completion Controller::setFeatures(const Command& cmd) {
  uint32_t cdw10 = cmd.sqe.cdw(10), cdw11 = cmd.sqe.cdw(11);
  uint8_t fid = cdw10 & 0xFF;
  if (cdw10 >> 31) return withStatus(kScFeatureNotSaveable);
  Completion c;
  std::lock_guard<std::mutex> lock(mutex_);
  switch (fid) {
    case kFeatNumQueues: {
      if (discovery_) return withStatus(kScInvalidField);
      uint32_t nsqr = cdw11 & 0xFFFF, ncqr = cdw11 >> 16;
      if (nsqr == 0xFFFF || ncqr == 0xFFFF) return withStatus(kScInvalidField);
      // Granted once, before I/O queues exist; later requests get the same answer.
      if (io_queues_granted_.load() == 0) {
        uint32_t want = std::min(nsqr, ncqr) + 1;
        io_queues_granted_.store(static_cast<uint16_t>(std::min<uint32_t>(want, limits_.max_io_queues)));
      }
      uint32_t n = io_queues_granted_.load() - 1u;
      c.dw0 = (n << 16) | n;
      return c;
    }
    case kFeatKeepAliveTimer:
      kato_ms_.store(cdw11);
      features_[fid] = cdw11;
      return c;
    case kFeatAsyncEventConfig:
      aec_ = cdw11;
      features_[fid] = cdw11;
      return c;
    case kFeatVolatileWriteCache:
      if (discovery_) return withStatus(kScInvalidField);
      features_[fid] = cdw11 & 1;
      return c;
    case kFeatArbitration:
    case kFeatPowerManagement:
    case kFeatTempThreshold:
    case kFeatErrorRecovery:
    case kFeatInterruptCoalescing:
    case kFeatWriteAtomicity: features_[fid] = cdw11; return c;
    case kFeatHostIdentifier: return withStatus(kScCommandSequenceError);  // set by Connect on fabrics
    default: return withStatus(kScInvalidField);
  }
}

Completion Controller::getFeatures(const Command& cmd) {
  uint32_t cdw10 = cmd.sqe.cdw(10);
  uint8_t fid = cdw10 & 0xFF;
  uint8_t sel = (cdw10 >> 8) & 0x7;
  Completion c;
  if (sel == 3) {  // supported capabilities: changeable, not saveable
    c.dw0 = 0x4;
    return c;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  switch (fid) {
    case kFeatNumQueues: {
      uint32_t n = std::max<uint32_t>(io_queues_granted_.load(), 1) - 1;
      c.dw0 = (n << 16) | n;
      return c;
    }
    case kFeatKeepAliveTimer: c.dw0 = kato_ms_.load(); return c;
    case kFeatAsyncEventConfig: c.dw0 = aec_; return c;
    case kFeatHostIdentifier: c.data.assign(host_id_.begin(), host_id_.end()); return c;
    case kFeatVolatileWriteCache:
    case kFeatArbitration:
    case kFeatPowerManagement:
    case kFeatTempThreshold:
    case kFeatErrorRecovery:
    case kFeatInterruptCoalescing:
    case kFeatWriteAtomicity: c.dw0 = features_[fid]; return c;
    default: return withStatus(kScInvalidField);
  }
}

Completion Controller::asyncEventRequest(const Command& cmd) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (undelivered_ns_event_) {
    // An event that arrived while no AER was outstanding completes this one.
    undelivered_ns_event_ = false;
    Completion c;
    c.dw0 = kAerNoticeNsChanged;
    return c;
  }
  if (aer_cids_.size() >= kAerLimit) return withStatus(kScAerLimitExceeded);
  aer_cids_.push_back(cmd.sqe.cid());
  Completion c;
  c.deferred = true;
  return c;
}

// ---- I/O ----------------------------------------------------------------------------

Completion Controller::io(const Command& cmd) {
  touch();
  if (discovery_) return withStatus(kScInvalidOpcode);
  auto list = subsystem_->namespaces();
  const uint8_t op = cmd.sqe.opcode();
  const uint32_t nsid = cmd.sqe.nsid();
  if (op == kIoFlush && nsid == 0xFFFFFFFF) {
    for (const auto& ns : *list) {
      if (!ns.device) continue;
      if (auto s = ns.device->flush(); !s.ok()) return withStatus(statusForBlockError(s.error(), true));
    }
    return Completion{};
  }
  const Namespace* ns = findNamespace(*list, nsid);
  if (!ns) return withStatus(kScInvalidNamespace);
  if (!ns->device) return withStatus(kScNamespaceNotReady);
  switch (op) {
    case kIoRead: return readWrite(cmd, *ns, false);
    case kIoWrite: return readWrite(cmd, *ns, true);
    case kIoFlush: {
      auto s = ns->device->flush();
      return s.ok() ? Completion{} : withStatus(statusForBlockError(s.error(), true));
    }
    case kIoWriteZeroes: return writeZeroes(cmd, *ns);
    case kIoDatasetManagement: return datasetManagement(cmd, *ns);
    default: return withStatus(kScInvalidOpcode);
  }
}

Completion Controller::readWrite(const Command& cmd, const Namespace& ns, bool write) {
  uint64_t slba = static_cast<uint64_t>(cmd.sqe.cdw(10)) | (static_cast<uint64_t>(cmd.sqe.cdw(11)) << 32);
  uint64_t nlb = (cmd.sqe.cdw(12) & 0xFFFF) + 1ULL;
  uint64_t blocks = ns.device->sizeBytes() / kLbaBytes;
  if (slba > blocks || nlb > blocks - slba) return withStatus(kScLbaOutOfRange);
  uint64_t bytes = nlb * kLbaBytes;
  if (bytes > (kLbaBytes << limits_.mdts)) return withStatus(kScInvalidField);
  if (bytes != cmd.transfer_len) return withStatus(kScSglDataLengthInvalid);
  if (write) {
    if (ns.read_only) return withStatus(kScNamespaceWriteProtected);
    if (cmd.data.size() != bytes) return withStatus(kScDataTransferError);
    auto s = ns.device->write(slba * kLbaBytes, cmd.data.data(), bytes);
    if (!s.ok()) return withStatus(statusForBlockError(s.error(), true));
    write_cmds_++;
    units_written_ += nlb * (kLbaBytes / 512);
    return Completion{};
  }
  Completion c;
  auto buf = acquireIoBuffer(bytes);
  auto s = ns.device->read(slba * kLbaBytes, buf->data(), bytes);
  if (!s.ok()) return withStatus(statusForBlockError(s.error(), false));
  c.payload = std::move(buf);
  read_cmds_++;
  units_read_ += nlb * (kLbaBytes / 512);
  return c;
}

Completion Controller::writeZeroes(const Command& cmd, const Namespace& ns) {
  uint64_t slba = static_cast<uint64_t>(cmd.sqe.cdw(10)) | (static_cast<uint64_t>(cmd.sqe.cdw(11)) << 32);
  uint32_t cdw12 = cmd.sqe.cdw(12);
  uint64_t nlb = (cdw12 & 0xFFFF) + 1ULL;
  uint64_t blocks = ns.device->sizeBytes() / kLbaBytes;
  if (slba > blocks || nlb > blocks - slba) return withStatus(kScLbaOutOfRange);
  if (ns.read_only) return withStatus(kScNamespaceWriteProtected);
  bool deallocate = (cdw12 >> 25) & 1;
  auto s = deallocate ? ns.device->discard(slba * kLbaBytes, nlb * kLbaBytes)
                      : ns.device->writeZeroes(slba * kLbaBytes, nlb * kLbaBytes);
  return s.ok() ? Completion{} : withStatus(statusForBlockError(s.error(), true));
}

Completion Controller::datasetManagement(const Command& cmd, const Namespace& ns) {
  uint32_t nr = (cmd.sqe.cdw(10) & 0xFF) + 1;
  bool deallocate = (cmd.sqe.cdw(11) >> 2) & 1;
  if (cmd.data.size() < nr * 16ULL) return withStatus(kScDataTransferError);
  if (!deallocate) return Completion{};  // attributes only: advisory
  if (ns.read_only) return withStatus(kScNamespaceWriteProtected);
  uint64_t blocks = ns.device->sizeBytes() / kLbaBytes;
  // Validate every range before changing anything.
  for (uint32_t i = 0; i < nr; ++i) {
    const uint8_t* r = cmd.data.data() + i * 16;
    uint64_t len = getLe32(r + 4), slba = getLe64(r + 8);
    if (slba > blocks || len > blocks - slba) return withStatus(kScLbaOutOfRange);
  }
  for (uint32_t i = 0; i < nr; ++i) {
    const uint8_t* r = cmd.data.data() + i * 16;
    uint64_t len = getLe32(r + 4), slba = getLe64(r + 8);
    if (len == 0) continue;
    auto s = ns.device->discard(slba * kLbaBytes, len * kLbaBytes);
    if (!s.ok()) return withStatus(statusForBlockError(s.error(), true));
  }
  return Completion{};
}

}  // namespace offcore::nvme
