#include "disk/byte_range_io.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "base/assert.h"

namespace offcore {
namespace {

// Per-thread scratch for partial blocks. FUSE requests are at most 1 MiB (+2
// blocks of alignment), so each worker keeps about that much; anything
// bigger (direct callers) gets a one-off buffer instead of pinning memory.
class Bounce {
 public:
  explicit Bounce(size_t n) {
    constexpr size_t kKeep = 4u << 20;
    thread_local std::vector<char> cached;
    if (n > kKeep) {
      own_.resize(n);
      p_ = own_.data();
      return;
    }
    if (cached.size() < n) cached.resize(n);
    p_ = cached.data();
  }
  char* data() { return p_; }

 private:
  std::vector<char> own_;
  char* p_ = nullptr;
};

}  // namespace

// Locks every stripe a byte range's regions map to, ascending, and releases
// them on destruction.
class ByteRangeIo::RangeLock {
 public:
  RangeLock(ByteRangeIo& io, uint64_t offset, uint64_t len, bool exclusive) : io_(io), exclusive_(exclusive) {
    if (len == 0) return;
    uint64_t first = offset / io.region_;
    uint64_t last = (offset + len - 1) / io.region_;
    if (last - first + 1 >= kStripes) {
      held_.set();
    } else {
      for (uint64_t r = first; r <= last; ++r) held_.set(r % kStripes);
    }
    for (size_t i = 0; i < kStripes; ++i) {
      if (!held_.test(i)) continue;
      if (exclusive_) {
        io_.stripes_[i].mu.lock();
      } else {
        io_.stripes_[i].mu.lock_shared();
      }
    }
  }
  ~RangeLock() {
    for (size_t i = 0; i < kStripes; ++i) {
      if (!held_.test(i)) continue;
      if (exclusive_) {
        io_.stripes_[i].mu.unlock();
      } else {
        io_.stripes_[i].mu.unlock_shared();
      }
    }
  }
  RangeLock(const RangeLock&) = delete;
  RangeLock& operator=(const RangeLock&) = delete;

 private:
  ByteRangeIo& io_;
  const bool exclusive_;
  std::bitset<kStripes> held_;
};

ByteRangeIo::ByteRangeIo(std::shared_ptr<BlockDevice> device)
    : device_(std::move(device)), bs_(device_->blockSize()), region_(bs_ * std::max<uint64_t>(1, kRegionBytes / bs_)) {
  OC_ASSERT(bs_ > 0, "block device reports a zero block size");
}

Status ByteRangeIo::read(uint64_t offset, void* buf, size_t len) {
  if (len == 0) return okStatus();
  if (aligned(offset, len)) return device_->read(offset, buf, len);
  uint64_t start = offset - offset % bs_;
  uint64_t end = (offset + len + bs_ - 1) / bs_ * bs_;
  Bounce b(end - start);
  OC_TRY(device_->read(start, b.data(), end - start));
  std::memcpy(buf, b.data() + (offset - start), len);
  return okStatus();
}

Status ByteRangeIo::write(uint64_t offset, const void* buf, size_t len) {
  if (len == 0) return okStatus();
  if (aligned(offset, len)) {
    RangeLock lock(*this, offset, len, false);
    return device_->write(offset, buf, len);
  }
  // One device write of the covering blocks: for a network back end one
  // command is cheaper than head + middle + tail.
  uint64_t start = offset - offset % bs_;
  uint64_t end = (offset + len + bs_ - 1) / bs_ * bs_;
  size_t span = static_cast<size_t>(end - start);
  Bounce b(span);
  RangeLock lock(*this, start, span, true);
  rmw_.fetch_add(1, std::memory_order_relaxed);
  bool head_partial = offset != start;
  bool tail_partial = offset + len != end;
  if (head_partial) OC_TRY(device_->read(start, b.data(), bs_));
  uint64_t tail = end - bs_;
  if (tail_partial && !(head_partial && tail == start)) {
    OC_TRY(device_->read(tail, b.data() + (tail - start), bs_));
  }
  std::memcpy(b.data() + (offset - start), buf, len);
  return device_->write(start, b.data(), span);
}

Status ByteRangeIo::discard(uint64_t offset, uint64_t len) { return zeroRange(offset, len, true); }

Status ByteRangeIo::writeZeroes(uint64_t offset, uint64_t len) { return zeroRange(offset, len, false); }

Status ByteRangeIo::zeroRange(uint64_t offset, uint64_t len, bool discard) {
  if (len == 0) return okStatus();
  if (aligned(offset, len)) {
    RangeLock lock(*this, offset, len, false);
    return discard ? device_->discard(offset, len) : device_->writeZeroes(offset, len);
  }
  uint64_t end = offset + len;
  uint64_t inner_begin = (offset + bs_ - 1) / bs_ * bs_;
  uint64_t inner_end = end / bs_ * bs_;
  uint64_t start = offset / bs_ * bs_;
  uint64_t cover_end = (end + bs_ - 1) / bs_ * bs_;
  RangeLock lock(*this, start, cover_end - start, true);
  if (offset % bs_ != 0) {
    OC_TRY(zeroPartialBlock(offset, std::min(inner_begin, end) - offset));
  }
  if (inner_end > inner_begin) {
    uint64_t n = inner_end - inner_begin;
    OC_TRY(discard ? device_->discard(inner_begin, n) : device_->writeZeroes(inner_begin, n));
  }
  if (end % bs_ != 0 && inner_end >= inner_begin) {
    OC_TRY(zeroPartialBlock(inner_end, end - inner_end));
  }
  return okStatus();
}

Status ByteRangeIo::zeroPartialBlock(uint64_t offset, uint64_t len) {
  uint64_t block = offset / bs_ * bs_;
  OC_ASSERT(offset + len <= block + bs_, "partial zeroing crosses a block boundary");
  rmw_.fetch_add(1, std::memory_order_relaxed);
  Bounce b(bs_);
  OC_TRY(device_->read(block, b.data(), bs_));
  std::memset(b.data() + (offset - block), 0, len);
  return device_->write(block, b.data(), bs_);
}

}  // namespace offcore
