#include "nvme/target/controller.h"

#include <algorithm>
#include <cstring>

namespace offcore::nvme {
namespace {

constexpr uint32_t kBlockSize = 4096;
constexpr uint8_t kLbadsShift = 12;
constexpr uint8_t kAerLimit = 4;  // AERL + 1

// Transfer direction from an opcode's low two bits (NVMe base spec): 01b
// host-to-controller, 10b controller-to-host.
}  // namespace

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
      cap |= 1ULL << 16;         // CQR: queues must be contiguous
      cap |= 30ULL << 24;        // TO: 15 s, in 500 ms units
      cap |= 1ULL << 37;         // CSS: NVM command set
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

Completion Controller::identify(const Command& cmd) {
  uint8_t cns = cmd.sqe.cdw(10) & 0xFF;
  uint32_t nsid = cmd.sqe.nsid();
  switch (cns) {
    case kCnsController: return identifyController();
    case kCnsNamespace:
      if (discovery_) return withStatus(kScInvalidField);
      return identifyNamespace(nsid);
    case kCnsActiveNsList: {
      if (discovery_) return withStatus(kScInvalidField);
      if (nsid >= 0xFFFFFFFE) return withStatus(kScInvalidNamespace);
      Completion c;
      c.data.assign(kIdentifySize, 0);
      size_t at = 0;
      auto list = subsystem_->namespaces();
      std::vector<uint32_t> ids;
      for (const auto& ns : *list) {
        if (ns.nsid > nsid) ids.push_back(ns.nsid);
      }
      std::sort(ids.begin(), ids.end());
      for (uint32_t id : ids) {
        if (at + 4 > kIdentifySize) break;
        putLe32(c.data.data() + at, id);
        at += 4;
      }
      return c;
    }
    case kCnsNsDescriptors: {
      if (discovery_) return withStatus(kScInvalidField);
      auto list = subsystem_->namespaces();
      const Namespace* ns = findNamespace(*list, nsid);
      if (!ns) return withStatus(kScInvalidNamespace);
      Completion c;
      c.data.assign(kIdentifySize, 0);
      uint8_t* p = c.data.data();
      // NIDT 2: NGUID, 16 bytes.
      p[0] = 2;
      p[1] = 16;
      std::memcpy(p + 4, ns->nguid.data(), 16);
      p += 20;
      // NIDT 3: UUID, 16 bytes (RFC 4122 variant bits set on the NGUID).
      p[0] = 3;
      p[1] = 16;
      std::memcpy(p + 4, ns->nguid.data(), 16);
      p[4 + 6] = static_cast<uint8_t>((p[4 + 6] & 0x0F) | 0x40);
      p[4 + 8] = static_cast<uint8_t>((p[4 + 8] & 0x3F) | 0x80);
      p += 20;
      // NIDT 4: command set identifier, 1 byte, NVM (0).
      p[0] = 4;
      p[1] = 1;
      return c;
    }
    default: return withStatus(kScInvalidField);
  }
}

Completion Controller::identifyController() {
  Completion c;
  c.data.assign(kIdentifySize, 0);
  uint8_t* d = c.data.data();
  putLe16(d + 0, 0);  // VID
  putLe16(d + 2, 0);  // SSVID
  putAscii(d + 4, 20, discovery_ ? "discovery" : subsystem_->serial().c_str());
  putAscii(d + 24, 40, discovery_ ? "offcore discovery" : limits_.model.c_str());
  putAscii(d + 64, 8, limits_.firmware.c_str());
  d[72] = 6;                    // RAB
  d[76] = discovery_ ? 0 : 0x02;  // CMIC: the subsystem may have several controllers
  d[77] = limits_.mdts;
  putLe16(d + 78, cntlid_);
  putLe32(d + 80, 0x00010300);  // VER
  putLe32(d + 92, discovery_ ? 0 : (1u << 8));  // OAES: namespace attribute notices
  d[111] = discovery_ ? 2 : 1;  // CNTRLTYPE
  putLe16(d + 256, 0);          // OACS
  d[258] = 3;                   // ACL
  d[259] = kAerLimit - 1;       // AERL
  d[260] = 0x03;                // FRMW: slot 1 read-only, one slot
  d[261] = 0x04;                // LPA: extended data (offsets) for Get Log Page
  d[262] = 0;                   // ELPE: one error log entry
  putLe16(d + 320, 10);         // KAS: 1 s granularity (100 ms units)
  d[512] = 0x66;                // SQES
  d[513] = 0x44;                // CQES
  putLe16(d + 514, static_cast<uint16_t>(limits_.max_queue_entries));  // MAXCMD
  if (!discovery_) {
    auto list = subsystem_->namespaces();
    uint32_t nn = 0;
    for (const auto& ns : *list) nn = std::max(nn, ns.nsid);
    putLe32(d + 516, std::max<uint32_t>(nn, 1));  // NN
    putLe16(d + 520, (1u << 2) | (1u << 3));      // ONCS: DSM, Write Zeroes
    d[525] = 0x07;                                // VWC present, broadcast flush supported
  }
  putLe32(d + 536, (1u << 0) | (1u << 20));  // SGLS: SGLs, address as offset (in-capsule)
  const std::string nqn = subsystemNqn();
  std::memcpy(d + 768, nqn.data(), std::min<size_t>(nqn.size(), 255));
  // Fabrics attributes.
  putLe32(d + 1792, (kSqeSize + limits_.in_capsule_data) / 16);  // IOCCSZ
  putLe32(d + 1796, kCqeSize / 16);                                // IORCSZ
  putLe16(d + 1800, 0);                                            // ICDOFF
  d[1802] = 0;                                                     // FCATT: dynamic model
  d[1803] = 1;                                                     // MSDBD
  return c;
}

const Namespace* Controller::findNamespace(const std::vector<Namespace>& list, uint32_t nsid) const {
  for (const auto& ns : list) {
    if (ns.nsid == nsid) return &ns;
  }
  return nullptr;
}

Completion Controller::identifyNamespace(uint32_t nsid) {
  auto list = subsystem_->namespaces();
  if (nsid == 0 || nsid == 0xFFFFFFFE) return withStatus(kScInvalidNamespace);
  Completion c;
  c.data.assign(kIdentifySize, 0);
  const Namespace* ns = findNamespace(*list, nsid);
  if (!ns) {
    // An inactive NSID within range reads as zeroes; beyond NN is invalid.
    if (nsid != 0xFFFFFFFF && nsid > 1024) return withStatus(kScInvalidNamespace);
    return c;
  }
  uint8_t* d = c.data.data();
  uint64_t blocks = ns->device ? ns->device->sizeBytes() / kBlockSize : 0;
  putLe64(d + 0, blocks);   // NSZE
  putLe64(d + 8, blocks);   // NCAP
  putLe64(d + 16, blocks);  // NUSE
  d[24] = 0x01;             // NSFEAT: thin provisioning
  d[25] = 0;                // NLBAF: one format
  d[26] = 0;                // FLBAS: format 0
  d[30] = 0x01;             // NMIC: may be shared
  d[33] = 0x09;             // DLFEAT: deallocated reads zero; Write Zeroes may deallocate
  std::memcpy(d + 104, ns->nguid.data(), 16);  // NGUID
  d[128 + 2] = kLbadsShift;                    // LBAF0: 4096-byte blocks, no metadata
  if (ns->read_only) d[99] = 0;                // NSATTR would mark write protection (2.0); NVMe 1.3 has none
  return c;
}

Completion Controller::getLogPage(const Command& cmd) {
  uint32_t cdw10 = cmd.sqe.cdw(10), cdw11 = cmd.sqe.cdw(11);
  uint8_t lid = cdw10 & 0xFF;
  uint64_t numd = ((static_cast<uint64_t>(cdw11 & 0xFFFF) << 16) | (cdw10 >> 16)) + 1;
  uint64_t offset = static_cast<uint64_t>(cmd.sqe.cdw(12)) | (static_cast<uint64_t>(cmd.sqe.cdw(13)) << 32);
  uint64_t want = numd * 4;
  if (want > cmd.transfer_len) return withStatus(kScSglDataLengthInvalid);
  if (offset & 3) return withStatus(kScInvalidField);

  std::vector<uint8_t> page;
  if (discovery_) {
    if (lid != kLogDiscovery) return withStatus(kScInvalidLogPage);
    auto entries = discovery_lister_(host_nqn_);
    page.assign(1024 + entries.size() * kDiscoveryEntrySize, 0);
    putLe64(page.data(), discovery_generation_());
    putLe64(page.data() + 8, entries.size());
    putLe16(page.data() + 16, 0);  // RECFMT
    for (size_t i = 0; i < entries.size(); ++i) {
      uint8_t* e = page.data() + 1024 + i * kDiscoveryEntrySize;
      e[0] = kTrtypeTcp;
      e[1] = kAdrfamIpv4;
      e[2] = entries[i].subtype;
      e[3] = kTreqNotRequired;
      putLe16(e + 4, 1);       // PORTID
      putLe16(e + 6, 0xFFFF);  // CNTLID: dynamic
      putLe16(e + 8, static_cast<uint16_t>(limits_.max_queue_entries));  // ASQSZ
      putAscii(e + 32, 32, entries[i].trsvcid.c_str());
      std::memcpy(e + 256, entries[i].subnqn.data(), std::min<size_t>(entries[i].subnqn.size(), 255));
      putAscii(e + 512, 256, entries[i].traddr.c_str());
      // TSAS for TCP: SECTYPE 0, no security.
    }
  } else {
    switch (lid) {
      case kLogError: page.assign(64, 0); break;
      case kLogSmart: {
        page.assign(512, 0);
        putLe16(page.data() + 1, 273 + 40);  // composite temperature, kelvin
        page[3] = 100;                       // available spare
        page[4] = 10;                        // spare threshold
        // Data units are thousands of 512-byte units, rounded up.
        putLe64(page.data() + 32, (units_read_.load() + 999) / 1000);
        putLe64(page.data() + 48, (units_written_.load() + 999) / 1000);
        putLe64(page.data() + 64, read_cmds_.load());
        putLe64(page.data() + 80, write_cmds_.load());
        break;
      }
      case kLogFirmwareSlot: {
        page.assign(512, 0);
        page[0] = 1;  // AFI: slot 1 active
        putAscii(page.data() + 8, 8, limits_.firmware.c_str());
        break;
      }
      case kLogChangedNamespaces: {
        page.assign(4096, 0);
        std::lock_guard<std::mutex> lock(mutex_);
        if (changed_nsids_.size() > 1024) {
          putLe32(page.data(), 0xFFFFFFFF);
        } else {
          for (size_t i = 0; i < changed_nsids_.size(); ++i) putLe32(page.data() + 4 * i, changed_nsids_[i]);
        }
        bool retain = (cdw10 >> 15) & 1;  // RAE
        if (!retain) {
          changed_nsids_.clear();
          ns_event_pending_ = false;
          undelivered_ns_event_ = false;
        }
        break;
      }
      default: return withStatus(kScInvalidLogPage);
    }
  }
  if (offset > page.size()) return withStatus(kScInvalidField);
  Completion c;
  c.data.assign(want, 0);
  size_t n = std::min<uint64_t>(want, page.size() - offset);
  std::memcpy(c.data.data(), page.data() + offset, n);
  return c;
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
    case kFeatWriteAtomicity:
      features_[fid] = cdw11;
      return c;
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
    case kFeatHostIdentifier:
      c.data.assign(host_id_.begin(), host_id_.end());
      return c;
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
  uint64_t blocks = ns.device->sizeBytes() / kBlockSize;
  if (slba > blocks || nlb > blocks - slba) return withStatus(kScLbaOutOfRange);
  uint64_t bytes = nlb * kBlockSize;
  if (bytes > (kBlockSize << limits_.mdts)) return withStatus(kScInvalidField);
  if (bytes != cmd.transfer_len) return withStatus(kScSglDataLengthInvalid);
  if (write) {
    if (ns.read_only) return withStatus(kScNamespaceWriteProtected);
    if (cmd.data.size() != bytes) return withStatus(kScDataTransferError);
    auto s = ns.device->write(slba * kBlockSize, cmd.data.data(), bytes);
    if (!s.ok()) return withStatus(statusForBlockError(s.error(), true));
    write_cmds_++;
    units_written_ += nlb * (kBlockSize / 512);
    return Completion{};
  }
  Completion c;
  c.data.resize(bytes);
  auto s = ns.device->read(slba * kBlockSize, c.data.data(), bytes);
  if (!s.ok()) return withStatus(statusForBlockError(s.error(), false));
  read_cmds_++;
  units_read_ += nlb * (kBlockSize / 512);
  return c;
}

Completion Controller::writeZeroes(const Command& cmd, const Namespace& ns) {
  uint64_t slba = static_cast<uint64_t>(cmd.sqe.cdw(10)) | (static_cast<uint64_t>(cmd.sqe.cdw(11)) << 32);
  uint32_t cdw12 = cmd.sqe.cdw(12);
  uint64_t nlb = (cdw12 & 0xFFFF) + 1ULL;
  uint64_t blocks = ns.device->sizeBytes() / kBlockSize;
  if (slba > blocks || nlb > blocks - slba) return withStatus(kScLbaOutOfRange);
  if (ns.read_only) return withStatus(kScNamespaceWriteProtected);
  bool deallocate = (cdw12 >> 25) & 1;
  auto s = deallocate ? ns.device->discard(slba * kBlockSize, nlb * kBlockSize)
                      : ns.device->writeZeroes(slba * kBlockSize, nlb * kBlockSize);
  return s.ok() ? Completion{} : withStatus(statusForBlockError(s.error(), true));
}

Completion Controller::datasetManagement(const Command& cmd, const Namespace& ns) {
  uint32_t nr = (cmd.sqe.cdw(10) & 0xFF) + 1;
  bool deallocate = (cmd.sqe.cdw(11) >> 2) & 1;
  if (cmd.data.size() < nr * 16ULL) return withStatus(kScDataTransferError);
  if (!deallocate) return Completion{};  // attributes only: advisory
  if (ns.read_only) return withStatus(kScNamespaceWriteProtected);
  uint64_t blocks = ns.device->sizeBytes() / kBlockSize;
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
    auto s = ns.device->discard(slba * kBlockSize, len * kBlockSize);
    if (!s.ok()) return withStatus(statusForBlockError(s.error(), true));
  }
  return Completion{};
}

}  // namespace offcore::nvme
