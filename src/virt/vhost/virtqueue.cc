// The split virtqueue, device side (virtio 1.1 §2.6).
//
// Layout (all little-endian, at front-end virtual addresses):
//   desc  table: size x struct vring_desc (16 bytes), 16-aligned
//   avail ring:  flags, idx, ring[size], used_event (EVENT_IDX), 2-aligned
//   used  ring:  flags, idx, ring[size] x vring_used_elem, avail_event, 4-aligned
// Every descriptor is copied out of guest memory once and then checked, so a
// guest rewriting the table under us changes nothing we already decided.
#include <endian.h>
#include <linux/vhost_types.h>
#include <linux/virtio_ring.h>

#include <atomic>
#include <cstring>
#include <deque>
#include <string>

#include "base/assert.h"
#include "virt/vhost/inflight.h"
#include "virt/vhost/packed_virtqueue.h"
#include "virt/vhost/virtqueue.h"

namespace offcore::virt {
namespace {

constexpr uint32_t kMaxQueueSize = 32768;
constexpr uint64_t kDescBytes = sizeof(vring_desc);
constexpr uint64_t kUsedElemBytes = sizeof(vring_used_elem);
// Offsets inside the avail and used rings.
constexpr uint64_t kIdxOffset = 2;
constexpr uint64_t kRingOffset = 4;

uint16_t load16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof v);
  return le16toh(v);
}

void store16(uint8_t* p, uint16_t v) {
  v = htole16(v);
  std::memcpy(p, &v, sizeof v);
}

uint16_t loadAcquire16(uint8_t* p) {
  return le16toh(std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(p)).load(std::memory_order_acquire));
}

void storeRelease16(uint8_t* p, uint16_t v) {
  std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(p)).store(htole16(v), std::memory_order_release);
}

struct Desc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};

Desc loadDesc(const uint8_t* table, uint32_t i) {
  vring_desc raw;
  std::memcpy(&raw, table + uint64_t{i} * kDescBytes, sizeof raw);
  return Desc{le64toh(raw.addr), le32toh(raw.len), le16toh(raw.flags), le16toh(raw.next)};
}

class SplitQueue final : public VirtQueue {
 public:
  SplitQueue(const GuestMemory& mem, const VirtQueueConfig& cfg, DirtyLog* log, uint8_t* desc, uint8_t* avail,
             uint8_t* used, std::optional<uint64_t> usedGpa)
      : mem_(mem),
        cfg_(cfg),
        log_(log),
        desc_(desc),
        avail_(avail),
        used_(used),
        usedGpa_(usedGpa),
        lastAvail_(static_cast<uint16_t>(cfg.lastAvailIdx)),
        availSeen_(static_cast<uint16_t>(cfg.lastAvailIdx)),
        usedIdx_(load16(used + kIdxOffset)),
        signalledUsed_(usedIdx_) {
    if (cfg.inflight != nullptr) {
      inflight_.emplace(cfg.inflight, cfg.size);
      std::vector<uint16_t> heads = inflight_->recover(usedIdx_);
      // Heads are taken in avail order and returned in the same order, so
      // the ones in flight are the avail entries right after used idx.
      if (!heads.empty()) lastAvail_ = static_cast<uint16_t>(usedIdx_ + heads.size());
      resubmit_.assign(heads.begin(), heads.end());
      resubmitted_ = static_cast<uint16_t>(heads.size());
    }
  }

  Result<std::optional<Chain>> pop() override {
    if (broken_) return makeError("virtqueue is broken by an earlier guest error; reset the device or the queue");
    if (!resubmit_.empty()) {
      Chain chain;
      chain.head = resubmit_.front();
      OC_TRY(walk(chain.head, chain));
      resubmit_.pop_front();
      popped_.push_back({chain.head, true});
      return std::optional<Chain>(std::move(chain));
    }
    uint16_t availIdx = loadAcquire16(avail_ + kIdxOffset);
    availSeen_ = availIdx;
    uint16_t pending = static_cast<uint16_t>(availIdx - lastAvail_);
    if (pending == 0) return std::optional<Chain>{};
    if (pending > cfg_.size) {
      return fail("avail idx " + std::to_string(availIdx) + " is " + std::to_string(pending) + " entries ahead of " +
                  std::to_string(lastAvail_) + ", more than the queue size " + std::to_string(cfg_.size));
    }
    uint16_t head = load16(avail_ + kRingOffset + 2ull * (lastAvail_ % cfg_.size));
    Chain chain;
    chain.head = head;
    chain.segments.reserve(4);  // header, data, status: one allocation per chain
    OC_TRY(walk(head, chain));
    if (inflight_) inflight_->begin(head);
    lastAvail_++;
    popped_.push_back({head, false});
    if (cfg_.eventIdx && kicksEnabled_) writeAvailEvent(lastAvail_);
    return std::optional<Chain>(std::move(chain));
  }

  void push(const Chain& chain, uint32_t written) override {
    writeUsed(chain, written);
    publishUsed();
    if (inflight_) inflight_->finish(chain.head, usedIdx_);
  }

  void pushMany(std::span<const Chain> chains, std::span<const uint32_t> written) override {
    OC_ASSERT(chains.size() == written.size(), "pushMany() needs one length per chain");
    if (chains.empty()) return;
    for (size_t i = 0; i < chains.size(); ++i) writeUsed(chains[i], written[i]);
    publishUsed();
    if (inflight_) {
      for (const Chain& c : chains) inflight_->finish(c.head, usedIdx_);
    }
  }

  // Gives back the last n chains: a resubmitted one goes back to the
  // resubmission list, one from the avail ring back to the ring (and is no
  // longer in flight).
  void unpop(uint16_t n) override {
    OC_ASSERT(n <= popped_.size(), "unpop() of chains this queue did not pop or already pushed");
    for (uint16_t i = 0; i < n; ++i) {
      auto [head, resubmitted] = popped_.back();
      popped_.pop_back();
      if (resubmitted) {
        resubmit_.push_front(head);
        continue;
      }
      lastAvail_ = static_cast<uint16_t>(lastAvail_ - 1);
      if (inflight_) inflight_->finish(head, usedIdx_);
    }
  }

  bool shouldNotify() override {
    // The used idx store must be visible before we read the guest's
    // suppression state, or both sides may decide the other will act.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    uint16_t old = signalledUsed_;
    signalledUsed_ = usedIdx_;
    if (old == usedIdx_) return false;
    if (cfg_.eventIdx) {
      uint16_t usedEvent = load16(avail_ + kRingOffset + 2ull * cfg_.size);
      return vring_need_event(usedEvent, usedIdx_, old) != 0;
    }
    return (load16(avail_) & VRING_AVAIL_F_NO_INTERRUPT) == 0;
  }

  void setKicksEnabled(bool enabled) override {
    kicksEnabled_ = enabled;
    if (cfg_.eventIdx) {
      // Everything up to the avail idx last read is known (maybe given back
      // by unpop()): a kick is wanted for what comes after it.
      if (enabled) writeAvailEvent(availSeen_);
    } else {
      uint16_t flags = load16(used_);
      flags = enabled ? (flags & ~VRING_USED_F_NO_NOTIFY) : (flags | VRING_USED_F_NO_NOTIFY);
      store16(used_, flags);
      logUsed(0, 2);
    }
    // The caller pops again after enabling: that read must not move before
    // the write above.
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }

  uint32_t lastAvailIdx() const override { return lastAvail_; }
  uint16_t resubmitted() const override { return resubmitted_; }
  void setDirtyLog(DirtyLog* log) override { log_ = log; }

 private:
  Error fail(const std::string& what) {
    broken_ = true;
    return makeError("guest broke virtqueue: " + what + "; the queue stops until it is set up again");
  }

  // Walks the chain at `head` into `chain`, following NEXT and at most one
  // level of INDIRECT.
  Status walk(uint16_t head, Chain& chain) {
    const uint8_t* table = desc_;
    uint32_t tableEntries = cfg_.size;
    bool indirect = false;
    uint32_t i = head;
    uint32_t steps = 0;
    uint64_t total = 0;
    bool sawWritable = false;
    for (;;) {
      if (i >= tableEntries) {
        return fail("descriptor index " + std::to_string(i) + " is outside a table of " + std::to_string(tableEntries));
      }
      if (++steps > tableEntries) {
        return fail("chain at head " + std::to_string(head) + " is longer than its table of " +
                    std::to_string(tableEntries) + " (a loop?)");
      }
      Desc d = loadDesc(table, i);
      if (d.flags & VRING_DESC_F_INDIRECT) {
        if (!cfg_.indirect) return fail("INDIRECT descriptor without VIRTIO_RING_F_INDIRECT_DESC");
        if (indirect) return fail("nested INDIRECT descriptor");
        if (d.flags & VRING_DESC_F_NEXT) return fail("INDIRECT descriptor with NEXT");
        if (d.len == 0 || d.len % kDescBytes != 0) {
          return fail("indirect table of " + std::to_string(d.len) + " bytes is not a multiple of 16");
        }
        if (d.len / kDescBytes > kMaxQueueSize) return fail("indirect table longer than 32768 entries");
        auto host = mem_.gpaToHost(d.addr, d.len);
        if (!host.ok()) return fail("indirect table: " + host.error().message);
        table = *host;
        tableEntries = d.len / kDescBytes;
        indirect = true;
        i = 0;
        steps = 0;
        continue;
      }
      bool writable = (d.flags & VRING_DESC_F_WRITE) != 0;
      if (sawWritable && !writable) return fail("device-readable descriptor after a device-writable one");
      sawWritable |= writable;
      total += d.len;
      if (total > cfg_.maxChainBytes) {
        return fail("chain carries more than " + std::to_string(cfg_.maxChainBytes) + " bytes");
      }
      auto host = mem_.gpaToHost(d.addr, d.len);
      if (!host.ok()) return fail("descriptor " + std::to_string(i) + ": " + host.error().message);
      chain.segments.push_back(Segment{*host, d.len, writable, d.addr});
      if (!(d.flags & VRING_DESC_F_NEXT)) return okStatus();
      i = d.next;
    }
  }

  void writeAvailEvent(uint16_t idx) {
    store16(used_ + kRingOffset + kUsedElemBytes * cfg_.size, idx);
    logUsed(kRingOffset + kUsedElemBytes * cfg_.size, 2);
  }

  void writeUsed(const Chain& chain, uint32_t written) {
    OC_ASSERT(chain.head < cfg_.size, "push() of a chain this queue did not pop");
    if (log_ != nullptr) markWritten(*log_, chain, written);
    uint16_t slot = usedIdx_ % cfg_.size;
    uint8_t* elem = used_ + kRingOffset + kUsedElemBytes * slot;
    vring_used_elem e{htole32(chain.head), htole32(written)};
    std::memcpy(elem, &e, sizeof e);
    logUsed(kRingOffset + kUsedElemBytes * slot, kUsedElemBytes);
    if (inflight_) inflight_->linkBatch(chain.head);
    usedIdx_++;
  }

  void publishUsed() {
    popped_.clear();
    storeRelease16(used_ + kIdxOffset, usedIdx_);
    logUsed(kIdxOffset, 2);
  }

  void logUsed(uint64_t offset, uint64_t len) {
    if (log_ != nullptr && usedGpa_) log_->mark(*usedGpa_ + offset, len);
  }

  const GuestMemory& mem_;
  VirtQueueConfig cfg_;
  DirtyLog* log_;
  uint8_t* desc_;
  uint8_t* avail_;
  uint8_t* used_;
  std::optional<uint64_t> usedGpa_;  // nullopt: the used ring cannot be logged
  uint16_t lastAvail_;
  uint16_t availSeen_;  // the avail idx pop() read last
  uint16_t usedIdx_;
  uint16_t signalledUsed_;
  std::vector<std::pair<uint16_t, bool>> popped_;  // since the last push: head, resubmitted; what unpop() gives back
  bool kicksEnabled_ = true;
  bool broken_ = false;
  std::optional<InflightRing> inflight_;
  std::deque<uint16_t> resubmit_;  // heads recovered from the region, oldest first
  uint16_t resubmitted_ = 0;
};

}  // namespace

void markWritten(DirtyLog& log, const Chain& chain, uint32_t written) {
  uint64_t left = written;
  for (const Segment& s : chain.segments) {
    if (left == 0) break;
    if (!s.deviceWritable) continue;
    uint64_t n = std::min<uint64_t>(left, s.len);
    if (n > 0) log.mark(s.gpa, n);
    left -= n;
  }
}

Result<std::unique_ptr<VirtQueue>> VirtQueue::create(const GuestMemory& mem, const VirtQueueConfig& cfg,
                                                     DirtyLog* log) {
  if (cfg.packed) return createPackedQueue(mem, cfg, log);
  uint32_t n = cfg.size;
  if (n == 0 || n > kMaxQueueSize || (n & (n - 1)) != 0) {
    return makeError("vring size " + std::to_string(n) + " is not a power of two in 1..32768; fix SET_VRING_NUM");
  }
  const VringAddresses& a = cfg.addrs;
  if (a.descUserAddr % VRING_DESC_ALIGN_SIZE || a.availUserAddr % VRING_AVAIL_ALIGN_SIZE ||
      a.usedUserAddr % VRING_USED_ALIGN_SIZE) {
    return makeError("vring addresses are misaligned (desc 16, avail 2, used 4); fix SET_VRING_ADDR");
  }
  uint64_t extra = cfg.eventIdx ? 2 : 0;
  auto desc = mem.uvaToHost(a.descUserAddr, kDescBytes * n);
  if (!desc.ok()) return desc.error().wrap("vring descriptor table");
  auto avail = mem.uvaToHost(a.availUserAddr, kRingOffset + 2ull * n + extra);
  if (!avail.ok()) return avail.error().wrap("vring avail ring");
  auto used = mem.uvaToHost(a.usedUserAddr, kRingOffset + kUsedElemBytes * n + extra);
  if (!used.ok()) return used.error().wrap("vring used ring");
  std::optional<uint64_t> usedGpa;
  if (a.flags & (1u << VHOST_VRING_F_LOG)) {
    usedGpa = a.logGuestAddr;
  } else if (auto gpa = mem.uvaToGpa(a.usedUserAddr); gpa.ok()) {
    usedGpa = *gpa;
  }
  return std::unique_ptr<VirtQueue>(new SplitQueue(mem, cfg, log, *desc, *avail, *used, usedGpa));
}

}  // namespace offcore::virt
