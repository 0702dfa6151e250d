// The packed virtqueue, device side (virtio 1.1 §2.7).
//
// Layout (little-endian, at front-end virtual addresses, SET_VRING_ADDR):
//   desc:  size x struct vring_packed_desc {addr, len, id, flags}, 16-aligned;
//          the driver makes descriptors available in place and the device
//          writes used descriptors back over them, in ring order.
//   avail: the driver event suppression area {off_wrap, flags}, 4-aligned:
//          when the driver wants interrupts.
//   used:  the device event suppression area, 4-aligned: when the device
//          wants kicks.
// A descriptor at the avail position is available when its AVAIL bit equals
// the avail wrap counter and its USED bit does not. A chain is consecutive
// descriptors linked by NEXT (wrapping at the ring's end); its buffer id is in
// the last one. An INDIRECT descriptor is a chain on its own and points at a
// table of packed descriptors, all of which belong to the buffer. The device
// returns a buffer by writing {id, len, flags AVAIL = USED = used wrap
// counter} at the used position, flags last with a release store, and moves
// the used position by the slots the chain took.
//
// The vring base (SET/GET_VRING_BASE) carries both positions, as QEMU 7.2
// does: avail | avail wrap << 15 | (used | used wrap << 15) << 16.
//
// As in the split queue, every descriptor is copied out once and checked,
// every address goes through GuestMemory, and an error breaks the queue.
//
// Inflight tracking (INFLIGHT_SHMFD, packed_inflight.h): a popped chain's
// ring descriptors are recorded in the region before it is served, and a
// push releases them around the publishing store in the spec's order. A
// queue over a region in use resumes where the region says: chains still in
// flight are walked again from their recorded descriptors (the same checks)
// and served first.
#include <endian.h>
#include <linux/vhost_types.h>
#include <linux/virtio_ring.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <deque>
#include <string>

#include "base/assert.h"
#include "virt/vhost/packed_inflight.h"
#include "virt/vhost/packed_virtqueue.h"

namespace offcore::virt {
namespace {

constexpr uint32_t kMaxQueueSize = 32768;
constexpr uint64_t kDescBytes = sizeof(vring_packed_desc);
constexpr uint64_t kEventBytes = sizeof(vring_packed_desc_event);
constexpr uint64_t kFlagsOffset = offsetof(vring_packed_desc, flags);
constexpr uint16_t kAvail = 1u << VRING_PACKED_DESC_F_AVAIL;
constexpr uint16_t kUsed = 1u << VRING_PACKED_DESC_F_USED;
constexpr uint16_t kWrapBit = 1u << VRING_PACKED_EVENT_F_WRAP_CTR;

std::string hex(uint32_t v) {
  char buf[9];
  snprintf(buf, sizeof buf, "%x", v);
  return buf;
}

uint16_t loadAcquire16(const uint8_t* p) {
  return le16toh(
      std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(const_cast<uint8_t*>(p))).load(std::memory_order_acquire));
}

void storeRelease16(uint8_t* p, uint16_t v) {
  std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(p)).store(htole16(v), std::memory_order_release);
}

uint16_t load16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof v);
  return le16toh(v);
}

void store16(uint8_t* p, uint16_t v) {
  v = htole16(v);
  std::memcpy(p, &v, sizeof v);
}

using Desc = PackedDesc;

Desc loadDesc(const uint8_t* table, uint32_t i) {
  vring_packed_desc raw;
  std::memcpy(&raw, table + uint64_t{i} * kDescBytes, sizeof raw);
  return Desc{le64toh(raw.addr), le32toh(raw.len), le16toh(raw.id), le16toh(raw.flags)};
}

// A ring position: index in 0..size-1 and the wrap counter of that lap.
struct Pos {
  uint16_t idx = 0;
  bool wrap = true;
};

// The vring base's halves: index in bits 0-14, wrap counter in bit 15.
Pos toPos(uint16_t v) { return Pos{static_cast<uint16_t>(v & ~kWrapBit), (v & kWrapBit) != 0}; }
uint16_t fromPos(Pos p) { return static_cast<uint16_t>(p.idx | (p.wrap ? kWrapBit : 0)); }

class PackedQueue final : public VirtQueue {
 public:
  PackedQueue(const GuestMemory& mem, const VirtQueueConfig& cfg, DirtyLog* log, uint8_t* desc, uint8_t* driverArea,
              uint8_t* deviceArea, std::optional<uint64_t> descGpa, std::optional<uint64_t> deviceGpa)
      : mem_(mem),
        cfg_(cfg),
        log_(log),
        desc_(desc),
        driver_(driverArea),
        device_(deviceArea),
        descGpa_(descGpa),
        deviceGpa_(deviceGpa) {
    avail_ = toPos(static_cast<uint16_t>(cfg.lastAvailIdx));
    used_ = toPos(static_cast<uint16_t>(cfg.lastAvailIdx >> 16));
    if (cfg.inflight != nullptr) {
      inflight_.emplace(cfg.inflight, cfg.size);
      PackedRecovery rec = inflight_->recover(desc_, used_.idx, used_.wrap);
      if (!rec.reset) {
        used_ = Pos{rec.usedIdx, rec.usedWrap};
        avail_ = used_;
        for (const auto& c : rec.chains) inFlight_ += static_cast<uint32_t>(c.descs.size());
        advance(avail_, static_cast<uint16_t>(inFlight_));
      }
      resubmitted_ = static_cast<uint16_t>(rec.chains.size());
      resubmit_.assign(std::make_move_iterator(rec.chains.begin()), std::make_move_iterator(rec.chains.end()));
    }
    signalled_ = used_;
  }

  Result<std::optional<Chain>> pop() override {
    if (broken_) return makeError("virtqueue is broken by an earlier guest error; reset the device or the queue");
    Chain chain;
    chain.segments.reserve(4);
    if (!resubmit_.empty()) {
      PackedInflightChain& r = resubmit_.front();
      size_t k = 0;
      OC_TRY(walk(
          [&](Desc& d) {
            if (k == r.descs.size()) return false;
            d = r.descs[k++];
            return true;
          },
          chain));
      if (k != r.descs.size()) return fail("an in-flight chain in the inflight region ends before its last descriptor");
      chain.inflightEntry = r.entry;
      popped_.push_back(Popped{{}, true, std::move(r)});
      resubmit_.pop_front();
      return std::optional<Chain>(std::move(chain));
    }
    uint16_t headFlags = loadAcquire16(desc_ + kDescBytes * avail_.idx + kFlagsOffset);
    if (!isAvail(headFlags, avail_.wrap)) return std::optional<Chain>{};
    Pos pos = avail_;
    taken_.clear();
    OC_TRY(walk(
        [&](Desc& d) {
          d = loadDesc(desc_, pos.idx);
          advance(pos, 1);
          if (inflight_) taken_.push_back(d);
          return true;
        },
        chain));
    if (inflight_) {
      if (inFlight_ + chain.descs > cfg_.size) {
        return fail("more descriptors in flight than the ring's " + std::to_string(cfg_.size) +
                    " (the driver made taken slots available again)");
      }
      chain.inflightEntry = inflight_->begin(taken_);
      inFlight_ += chain.descs;
    }
    popped_.push_back(Popped{avail_, false, {chain.inflightEntry, {}}, chain.descs});
    avail_ = pos;
    return std::optional<Chain>(std::move(chain));
  }

  void push(const Chain& chain, uint32_t written) override {
    Pos at = used_;
    uint16_t flags = writeUsed(chain, written);
    if (inflight_) {
      inflight_->release(chain.inflightEntry);
      inflight_->setUsed(used_.idx, used_.wrap);
    }
    storeRelease16(desc_ + kDescBytes * at.idx + kFlagsOffset, flags);
    logDesc(at.idx, 1);
    if (inflight_) {
      inflight_->done(chain.inflightEntry);
      inflight_->commit();
      inFlight_ -= chain.descs;
    }
    popped_.clear();
  }

  // The first used descriptor's flags are stored last: the driver reads used
  // descriptors in ring order, so it sees none of them before all of them.
  void pushMany(std::span<const Chain> chains, std::span<const uint32_t> written) override {
    OC_ASSERT(chains.size() == written.size(), "pushMany() needs one length per chain");
    if (chains.empty()) return;
    Pos first = used_;
    uint16_t firstFlags = writeUsed(chains[0], written[0]);
    for (size_t i = 1; i < chains.size(); ++i) {
      Pos at = used_;
      uint16_t flags = writeUsed(chains[i], written[i]);
      store16(desc_ + kDescBytes * at.idx + kFlagsOffset, flags);
      logDesc(at.idx, 1);
    }
    if (inflight_) {
      for (const Chain& c : chains) inflight_->release(c.inflightEntry);
      inflight_->setUsed(used_.idx, used_.wrap);
    }
    storeRelease16(desc_ + kDescBytes * first.idx + kFlagsOffset, firstFlags);
    logDesc(first.idx, 1);
    if (inflight_) {
      for (const Chain& c : chains) {
        inflight_->done(c.inflightEntry);
        inFlight_ -= c.descs;
      }
      inflight_->commit();
    }
    popped_.clear();
  }

  // Gives back the last n chains: a resubmitted one goes back to the
  // resubmission list (still in flight), one from the ring back to the ring
  // (and out of the region).
  void unpop(uint16_t n) override {
    OC_ASSERT(n <= popped_.size(), "unpop() of chains this queue did not pop or already pushed");
    for (uint16_t i = 0; i < n; ++i) {
      Popped& p = popped_.back();
      if (p.resubmitted) {
        resubmit_.push_front(std::move(p.recovered));
      } else {
        avail_ = p.start;
        if (inflight_) {
          inflight_->abandon(p.recovered.entry);
          inFlight_ -= p.slots;
        }
      }
      popped_.pop_back();
    }
  }

  bool shouldNotify() override {
    // The used flags store must be visible before we read the driver's
    // suppression state, or both sides may decide the other will act.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    Pos old = signalled_;
    signalled_ = used_;
    if (old.idx == used_.idx && old.wrap == used_.wrap) return false;
    uint16_t flags = load16(driver_ + offsetof(vring_packed_desc_event, flags));
    if (flags == VRING_PACKED_EVENT_FLAG_DISABLE) return false;
    if (flags != VRING_PACKED_EVENT_FLAG_DESC || !cfg_.eventIdx) return true;
    uint16_t offWrap = load16(driver_ + offsetof(vring_packed_desc_event, off_wrap));
    // Unroll the three positions onto one line where used_ is in lap 0
    // (0..size-1) and the previous lap is negative, then ask whether the
    // driver's event position lies in (old, new].
    int32_t size = cfg_.size;
    int32_t now = used_.idx;
    int32_t before = old.idx - (old.wrap == used_.wrap ? 0 : size);
    int32_t event = (offWrap & ~kWrapBit) - (((offWrap & kWrapBit) != 0) == used_.wrap ? 0 : size);
    return before < event + 1 && event + 1 <= now;
  }

  void setKicksEnabled(bool enabled) override {
    // ENABLE asks for a kick on any new buffer, which covers the EVENT_IDX
    // contract too (chains given back by unpop() included).
    store16(device_ + offsetof(vring_packed_desc_event, flags),
            enabled ? VRING_PACKED_EVENT_FLAG_ENABLE : VRING_PACKED_EVENT_FLAG_DISABLE);
    if (log_ != nullptr && deviceGpa_) log_->mark(*deviceGpa_, kEventBytes);
    // The caller pops again after enabling: that read must not move before
    // the write above.
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }

  uint32_t lastAvailIdx() const override { return uint32_t{fromPos(avail_)} | uint32_t{fromPos(used_)} << 16; }
  uint16_t resubmitted() const override { return resubmitted_; }
  void setDirtyLog(DirtyLog* log) override { log_ = log; }

 private:
  static bool isAvail(uint16_t flags, bool wrap) {
    return ((flags & kAvail) != 0) == wrap && ((flags & kUsed) != 0) != wrap;
  }

  void advance(Pos& p, uint16_t n) const {
    uint32_t next = uint32_t{p.idx} + n;
    if (next >= cfg_.size) {
      next -= cfg_.size;
      p.wrap = !p.wrap;
    }
    p.idx = static_cast<uint16_t>(next);
  }

  Error fail(const std::string& what) {
    broken_ = true;
    return makeError("guest broke packed virtqueue: " + what + "; the queue stops until it is set up again");
  }

  // Walks one chain into `chain`: next(d) gives its ring descriptors in
  // turn (from the ring, or recorded in the inflight region) and false when
  // there are no more.
  template <typename Next>
  Status walk(Next next, Chain& chain) {
    uint16_t slots = 0;
    uint64_t total = 0;
    bool sawWritable = false;
    for (;;) {
      if (++slots > cfg_.size) {
        return fail("chain at " + std::to_string(avail_.idx) + " is longer than the queue size " +
                    std::to_string(cfg_.size));
      }
      Desc d;
      if (!next(d)) return fail("an in-flight chain in the inflight region has no last descriptor");
      if (d.flags & VRING_DESC_F_INDIRECT) {
        if (!cfg_.indirect) return fail("INDIRECT descriptor without VIRTIO_RING_F_INDIRECT_DESC");
        if (d.flags & VRING_DESC_F_NEXT) return fail("INDIRECT descriptor with NEXT");
        if (slots != 1) return fail("INDIRECT descriptor inside a chain (it must be a buffer's only descriptor)");
        OC_TRY(walkIndirect(d, chain, total));
        chain.head = d.id;
        chain.descs = 1;
        return okStatus();
      }
      OC_TRY(addSegment(d, chain, total, sawWritable, "descriptor " + std::to_string(slots - 1) + " of a chain"));
      if (!(d.flags & VRING_DESC_F_NEXT)) {
        chain.head = d.id;  // the buffer id is the last descriptor's
        chain.descs = slots;
        return okStatus();
      }
    }
  }

  // Every entry of the table belongs to the buffer (NEXT is not followed).
  Status walkIndirect(const Desc& ind, Chain& chain, uint64_t& total) {
    if (ind.len == 0 || ind.len % kDescBytes != 0) {
      return fail("indirect table of " + std::to_string(ind.len) + " bytes is not a multiple of 16");
    }
    uint32_t entries = ind.len / kDescBytes;
    if (entries > kMaxQueueSize) return fail("indirect table longer than 32768 entries");
    auto table = mem_.gpaToHost(ind.addr, ind.len);
    if (!table.ok()) return fail("indirect table: " + table.error().message);
    bool sawWritable = false;
    for (uint32_t i = 0; i < entries; ++i) {
      Desc d = loadDesc(*table, i);
      if (d.flags & VRING_DESC_F_INDIRECT) return fail("nested INDIRECT descriptor");
      OC_TRY(addSegment(d, chain, total, sawWritable, "indirect entry " + std::to_string(i)));
    }
    return okStatus();
  }

  Status addSegment(const Desc& d, Chain& chain, uint64_t& total, bool& sawWritable, const std::string& where) {
    bool writable = (d.flags & VRING_DESC_F_WRITE) != 0;
    if (sawWritable && !writable) return fail("device-readable descriptor after a device-writable one");
    sawWritable |= writable;
    total += d.len;
    if (total > cfg_.maxChainBytes) {
      return fail("chain carries more than " + std::to_string(cfg_.maxChainBytes) + " bytes");
    }
    auto host = mem_.gpaToHost(d.addr, d.len);
    if (!host.ok()) return fail(where + ": " + host.error().message);
    chain.segments.push_back(Segment{*host, d.len, writable, d.addr});
    return okStatus();
  }

  // Writes id and len at the used position, moves it past the chain, and
  // returns the flags for the caller to store (last).
  uint16_t writeUsed(const Chain& chain, uint32_t written) {
    OC_ASSERT(chain.descs >= 1 && chain.descs <= cfg_.size, "push() of a chain this queue did not pop");
    if (log_ != nullptr) markWritten(*log_, chain, written);
    uint8_t* d = desc_ + kDescBytes * used_.idx;
    uint32_t len = htole32(written);
    uint16_t id = htole16(chain.head);
    std::memcpy(d + offsetof(vring_packed_desc, len), &len, sizeof len);
    std::memcpy(d + offsetof(vring_packed_desc, id), &id, sizeof id);
    uint16_t flags = used_.wrap ? (kAvail | kUsed) : 0;
    if (written > 0) flags |= VRING_DESC_F_WRITE;
    advance(used_, chain.descs);
    return flags;
  }

  void logDesc(uint16_t idx, uint16_t n) {
    if (log_ != nullptr && descGpa_) log_->mark(*descGpa_ + kDescBytes * idx, kDescBytes * n);
  }

  const GuestMemory& mem_;
  VirtQueueConfig cfg_;
  DirtyLog* log_;
  uint8_t* desc_;
  uint8_t* driver_;
  uint8_t* device_;
  std::optional<uint64_t> descGpa_;    // nullopt: the ring cannot be logged
  std::optional<uint64_t> deviceGpa_;  // nullopt: the device area cannot be logged
  // A chain popped since the last push, for unpop(): where it started in the
  // ring, or the recovered chain it was resubmitted from.
  struct Popped {
    Pos start;
    bool resubmitted = false;
    PackedInflightChain recovered;  // entry only, for a chain from the ring
    uint16_t slots = 0;
  };

  Pos avail_;
  Pos used_;
  Pos signalled_;               // used_ at the last shouldNotify()
  std::vector<Popped> popped_;  // since the last push
  bool broken_ = false;
  std::optional<PackedInflightRing> inflight_;
  std::deque<PackedInflightChain> resubmit_;  // chains the region had in flight, oldest first
  uint16_t resubmitted_ = 0;
  uint32_t inFlight_ = 0;    // ring descriptors the region holds in flight
  std::vector<Desc> taken_;  // the chain pop() is walking, for the region
};

}  // namespace

Result<std::unique_ptr<VirtQueue>> createPackedQueue(const GuestMemory& mem, const VirtQueueConfig& cfg,
                                                     DirtyLog* log) {
  uint32_t n = cfg.size;
  if (n == 0 || n > kMaxQueueSize) {
    return makeError("packed vring size " + std::to_string(n) + " is not in 1..32768; fix SET_VRING_NUM");
  }
  if ((cfg.lastAvailIdx & 0x7fff) >= n || ((cfg.lastAvailIdx >> 16) & 0x7fff) >= n) {
    return makeError("packed vring base 0x" + hex(cfg.lastAvailIdx) +
                     " puts the avail or used index outside a ring of " + std::to_string(n) + "; fix SET_VRING_BASE");
  }
  const VringAddresses& a = cfg.addrs;
  if (a.descUserAddr % 16 || a.availUserAddr % 4 || a.usedUserAddr % 4) {
    return makeError("packed vring addresses are misaligned (desc 16, event areas 4); fix SET_VRING_ADDR");
  }
  auto desc = mem.uvaToHost(a.descUserAddr, kDescBytes * n);
  if (!desc.ok()) return desc.error().wrap("packed vring descriptor ring");
  auto driver = mem.uvaToHost(a.availUserAddr, kEventBytes);
  if (!driver.ok()) return driver.error().wrap("packed vring driver event area");
  auto device = mem.uvaToHost(a.usedUserAddr, kEventBytes);
  if (!device.ok()) return device.error().wrap("packed vring device event area");
  std::optional<uint64_t> descGpa;
  if (auto gpa = mem.uvaToGpa(a.descUserAddr); gpa.ok()) descGpa = *gpa;
  std::optional<uint64_t> deviceGpa;
  if (a.flags & (1u << VHOST_VRING_F_LOG)) {
    deviceGpa = a.logGuestAddr;
  } else if (auto gpa = mem.uvaToGpa(a.usedUserAddr); gpa.ok()) {
    deviceGpa = *gpa;
  }
  return std::unique_ptr<VirtQueue>(new PackedQueue(mem, cfg, log, *desc, *driver, *device, descGpa, deviceGpa));
}

}  // namespace offcore::virt
