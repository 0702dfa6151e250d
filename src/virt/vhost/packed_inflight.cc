// Packed inflight regions: the spec's steps (see packed_inflight.h).
#include "virt/vhost/packed_inflight.h"

#include <linux/virtio_ring.h>

#include <algorithm>

#include "base/assert.h"
#include "virt/vhost/inflight_bytes.h"

namespace offcore::virt {
namespace {

using inflight_bytes::get;
using inflight_bytes::kAlign;
using inflight_bytes::kVersion;
using inflight_bytes::put;
// Header fields.
constexpr size_t kVersionAt = 8, kDescNumAt = 10, kFreeHeadAt = 12, kOldFreeHeadAt = 14, kUsedIdxAt = 16,
                 kOldUsedIdxAt = 18, kUsedWrapAt = 20, kOldUsedWrapAt = 21, kEntriesAt = 32;
// DescStatePacked fields.
constexpr size_t kEntryBytes = 32;
constexpr size_t kInflightAt = 0, kNextAt = 2, kLastAt = 4, kNumAt = 6, kCounterAt = 8, kIdAt = 16, kFlagsAt = 18,
                 kLenAt = 20, kAddrAt = 24;
constexpr uint16_t kAvail = 1u << VRING_PACKED_DESC_F_AVAIL;
constexpr uint16_t kUsed = 1u << VRING_PACKED_DESC_F_USED;
// The flags field of a 16-byte packed ring descriptor.
constexpr size_t kRingFlagsAt = 14;

}  // namespace

uint64_t packedInflightQueueBytes(uint16_t queueSize) {
  return (kEntriesAt + kEntryBytes * queueSize + kAlign - 1) & ~(kAlign - 1);
}

PackedInflightRing::PackedInflightRing(uint8_t* region, uint16_t size)
    : r_(region), size_(size), next_(size, size), last_(size, size) {}

uint8_t* PackedInflightRing::entry(uint16_t i) const { return r_ + kEntriesAt + kEntryBytes * i; }

void PackedInflightRing::init(uint16_t usedIdx, bool usedWrap) {
  std::fill(r_, r_ + kEntriesAt + kEntryBytes * size_, 0);
  for (uint32_t i = 0; i < size_; ++i) {
    next_[i] = static_cast<uint16_t>(i + 1);
    put<uint16_t>(entry(static_cast<uint16_t>(i)) + kNextAt, next_[i]);
  }
  last_.assign(size_, size_);
  freeHead_ = 0;
  counter_ = 1;
  usedIdx_ = usedIdx;
  usedWrap_ = usedWrap;
  put<uint16_t>(r_ + kDescNumAt, size_);
  put<uint16_t>(r_ + kUsedIdxAt, usedIdx);
  put<uint16_t>(r_ + kOldUsedIdxAt, usedIdx);
  put<uint8_t>(r_ + kUsedWrapAt, usedWrap ? 1 : 0);
  put<uint8_t>(r_ + kOldUsedWrapAt, usedWrap ? 1 : 0);
  put<uint16_t>(r_ + kVersionAt, kVersion);
}

PackedRecovery PackedInflightRing::recover(const uint8_t* descRing, uint16_t usedIdx, bool usedWrap) {
  const uint16_t n = size_;
  uint16_t freeHead = get<uint16_t>(r_ + kFreeHeadAt), oldFree = get<uint16_t>(r_ + kOldFreeHeadAt);
  uint16_t used = get<uint16_t>(r_ + kUsedIdxAt), oldUsed = get<uint16_t>(r_ + kOldUsedIdxAt);
  uint8_t wrap = get<uint8_t>(r_ + kUsedWrapAt), oldWrap = get<uint8_t>(r_ + kOldUsedWrapAt);
  if (get<uint16_t>(r_ + kVersionAt) != kVersion || get<uint16_t>(r_ + kDescNumAt) != n || freeHead > n ||
      oldFree > n || used >= n || oldUsed >= n || wrap > 1 || oldWrap > 1) {
    init(usedIdx, usedWrap);
    return PackedRecovery{usedIdx, usedWrap, {}, true};
  }
  // A push stopped between moving used_idx and committing: if the first used
  // descriptor of the batch no longer looks available in its lap, the guest
  // may have seen it, so the push counts as done; otherwise it is undone.
  if (used != oldUsed || wrap != oldWrap) {
    const uint16_t flags = get<uint16_t>(descRing + 16ull * oldUsed + kRingFlagsAt) & (kAvail | kUsed);
    if (flags != (oldWrap ? kAvail : kUsed)) {
      put<uint16_t>(r_ + kOldFreeHeadAt, freeHead);
      put<uint16_t>(r_ + kOldUsedIdxAt, used);
      put<uint8_t>(r_ + kOldUsedWrapAt, wrap);
      oldFree = freeHead, oldUsed = used, oldWrap = wrap;
    }
  }
  // Roll back whatever pop or push had not committed.
  put<uint16_t>(r_ + kFreeHeadAt, oldFree);
  put<uint16_t>(r_ + kUsedIdxAt, oldUsed);
  put<uint8_t>(r_ + kUsedWrapAt, oldWrap);
  usedIdx_ = oldUsed;
  usedWrap_ = oldWrap != 0;

  enum : uint8_t { kUnknown, kFree, kClaimed };
  std::vector<uint8_t> state(n, kUnknown);
  uint16_t e = oldFree;
  for (uint32_t k = 0; e < n && k < n && state[e] == kUnknown; ++k) {
    state[e] = kFree;
    put<uint8_t>(entry(e) + kInflightAt, 0);
    e = get<uint16_t>(entry(e) + kNextAt);
  }

  std::vector<std::pair<uint64_t, PackedInflightChain>> found;
  std::vector<uint16_t> links(n, n), lasts(n, n);
  uint64_t maxCounter = 0;
  uint32_t slots = 0;
  bool consistent = true;
  for (uint32_t h = 0; h < n && consistent; ++h) {
    const auto head = static_cast<uint16_t>(h);
    maxCounter = std::max(maxCounter, get<uint64_t>(entry(head) + kCounterAt));
    if (state[head] == kFree || get<uint8_t>(entry(head) + kInflightAt) == 0) continue;
    const uint16_t num = get<uint16_t>(entry(head) + kNumAt);
    if (state[head] != kUnknown || num == 0 || num > n - slots) {
      consistent = false;
      break;
    }
    PackedInflightChain chain;
    chain.entry = head;
    e = head;
    for (uint16_t k = 0; k < num; ++k) {
      if (e >= n || state[e] != kUnknown) {
        consistent = false;
        break;
      }
      state[e] = kClaimed;
      const uint8_t* p = entry(e);
      chain.descs.push_back(PackedDesc{get<uint64_t>(p + kAddrAt), get<uint32_t>(p + kLenAt), get<uint16_t>(p + kIdAt),
                                       get<uint16_t>(p + kFlagsAt)});
      if (k + 1 < num) e = links[e] = get<uint16_t>(p + kNextAt);
    }
    if (!consistent || e != get<uint16_t>(entry(head) + kLastAt)) {
      consistent = false;
      break;
    }
    lasts[head] = e;
    slots += num;
    found.emplace_back(get<uint64_t>(entry(head) + kCounterAt), std::move(chain));
  }
  if (!consistent) {
    // Another back end's bug or a front end that wrote the region: what was
    // in flight is unknown, so start over from the vring base.
    init(usedIdx, usedWrap);
    return PackedRecovery{usedIdx, usedWrap, {}, true};
  }

  // The free list again, from every entry no chain holds: entries a back end
  // killed between two steps left on neither list come back this way.
  // Only free entries' links change, so a walk of the old or the new list
  // (a kill during this loop) stays on free entries.
  next_ = links;
  last_ = lasts;
  uint16_t first = n, prev = n;
  for (uint32_t i = 0; i < n; ++i) {
    const auto x = static_cast<uint16_t>(i);
    if (state[x] == kClaimed) continue;
    if (prev == n) {
      first = x;
    } else {
      next_[prev] = x;
      put<uint16_t>(entry(prev) + kNextAt, x);
    }
    prev = x;
  }
  if (prev != n) {
    next_[prev] = n;
    put<uint16_t>(entry(prev) + kNextAt, n);
  }
  freeHead_ = first;
  put<uint16_t>(r_ + kFreeHeadAt, first);
  put<uint16_t>(r_ + kOldFreeHeadAt, first);
  counter_ = maxCounter + 1;

  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  PackedRecovery out{oldUsed, oldWrap != 0, {}, false};
  out.chains.reserve(found.size());
  for (auto& [c, chain] : found) out.chains.push_back(std::move(chain));
  return out;
}

uint16_t PackedInflightRing::begin(std::span<const PackedDesc> descs) {
  OC_ASSERT(!descs.empty() && descs.size() <= size_, "begin() of an empty chain or one longer than the ring");
  const uint16_t head = freeHead_;
  OC_ASSERT(head < size_, "begin() with no free inflight entry (more in flight than the ring holds)");
  uint8_t* h = entry(head);
  put<uint16_t>(h + kNumAt, 0);
  put<uint64_t>(h + kCounterAt, counter_++);
  put<uint8_t>(h + kInflightAt, 1);
  uint16_t e = head;
  for (size_t k = 0; k < descs.size(); ++k) {
    OC_ASSERT(e < size_, "begin() ran out of free inflight entries");
    if (k + 1 == descs.size()) {
      put<uint16_t>(h + kLastAt, e);
      last_[head] = e;
    }
    put<uint16_t>(h + kNumAt, static_cast<uint16_t>(k + 1));
    uint8_t* p = entry(e);
    put<uint64_t>(p + kAddrAt, descs[k].addr);
    put<uint32_t>(p + kLenAt, descs[k].len);
    put<uint16_t>(p + kIdAt, descs[k].id);
    put<uint16_t>(p + kFlagsAt, descs[k].flags);
    e = next_[e];
    freeHead_ = e;
    put<uint16_t>(r_ + kFreeHeadAt, e);
  }
  put<uint16_t>(r_ + kOldFreeHeadAt, freeHead_);
  return head;
}

void PackedInflightRing::release(uint16_t head) {
  OC_ASSERT(head < size_ && last_[head] < size_, "release() of an entry that is not a chain in flight");
  const uint16_t last = last_[head];
  next_[last] = freeHead_;
  put<uint16_t>(entry(last) + kNextAt, freeHead_);
  last_[head] = size_;
  freeHead_ = head;
  put<uint16_t>(r_ + kFreeHeadAt, head);
}

void PackedInflightRing::setUsed(uint16_t idx, bool wrap) {
  usedIdx_ = idx;
  usedWrap_ = wrap;
  put<uint16_t>(r_ + kUsedIdxAt, idx);
  put<uint8_t>(r_ + kUsedWrapAt, wrap ? 1 : 0);
}

void PackedInflightRing::done(uint16_t head) { put<uint8_t>(entry(head) + kInflightAt, 0); }

void PackedInflightRing::commit() {
  put<uint16_t>(r_ + kOldFreeHeadAt, freeHead_);
  put<uint16_t>(r_ + kOldUsedIdxAt, usedIdx_);
  put<uint8_t>(r_ + kOldUsedWrapAt, usedWrap_ ? 1 : 0);
}

void PackedInflightRing::abandon(uint16_t head) {
  // Not in flight first: a kill before the entries are back on the free list
  // only leaves them on neither list, which recover() repairs.
  done(head);
  release(head);
  commit();
}

}  // namespace offcore::virt
