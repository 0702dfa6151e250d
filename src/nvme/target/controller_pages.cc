// The controller's read-only pages: Identify data structures and log pages.
// Split from controller.cc to keep each file readable in one sitting.
#include <algorithm>
#include <cstring>
#include <optional>

#include "nvme/target/controller.h"

namespace offcore::nvme {

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
  d[72] = 6;                      // RAB
  d[76] = discovery_ ? 0 : 0x02;  // CMIC: the subsystem may have several controllers
  d[77] = limits_.mdts;
  putLe16(d + 78, cntlid_);
  putLe32(d + 80, 0x00010300);                                         // VER
  putLe32(d + 92, discovery_ ? 0 : (1u << 8));                         // OAES: namespace attribute notices
  d[111] = discovery_ ? 2 : 1;                                         // CNTRLTYPE
  putLe16(d + 256, 0);                                                 // OACS
  d[258] = 3;                                                          // ACL
  d[259] = kAerLimit - 1;                                              // AERL
  d[260] = 0x03;                                                       // FRMW: slot 1 read-only, one slot
  d[261] = 0x04;                                                       // LPA: extended data (offsets) for Get Log Page
  d[262] = 0;                                                          // ELPE: one error log entry
  putLe16(d + 320, 10);                                                // KAS: 1 s granularity (100 ms units)
  d[512] = 0x66;                                                       // SQES
  d[513] = 0x44;                                                       // CQES
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
  putLe32(d + 1796, kCqeSize / 16);                              // IORCSZ
  putLe16(d + 1800, 0);                                          // ICDOFF
  d[1802] = 0;                                                   // FCATT: dynamic model
  d[1803] = 1;                                                   // MSDBD
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
  uint64_t blocks = ns->device ? ns->device->sizeBytes() / kLbaBytes : 0;
  // NUSE: the blocks allocated now, so a host sees what thin provisioning
  // saves; a device that cannot tell counts as full.
  std::optional<uint64_t> allocated = ns->device ? ns->device->allocatedBytes() : std::nullopt;
  uint64_t used = allocated ? std::min(blocks, (*allocated + kLbaBytes - 1) / kLbaBytes) : blocks;
  putLe64(d + 0, blocks);                      // NSZE
  putLe64(d + 8, blocks);                      // NCAP
  putLe64(d + 16, used);                       // NUSE
  d[24] = 0x01;                                // NSFEAT: thin provisioning
  d[25] = 0;                                   // NLBAF: one format
  d[26] = 0;                                   // FLBAS: format 0
  d[30] = 0x01;                                // NMIC: may be shared
  d[33] = 0x09;                                // DLFEAT: deallocated reads zero; Write Zeroes may deallocate
  std::memcpy(d + 104, ns->nguid.data(), 16);  // NGUID
  d[128 + 2] = kLbaShift;                      // LBAF0: 4096-byte blocks, no metadata
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
      putLe16(e + 4, 1);                                                 // PORTID
      putLe16(e + 6, 0xFFFF);                                            // CNTLID: dynamic
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

}  // namespace offcore::nvme
