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

ByteRangeIo::StripeSet ByteRangeIo::stripesOf(uint64_t offset, uint64_t len) const {
  StripeSet set;
  if (len == 0) return set;
  uint64_t first = offset / region_;
  uint64_t last = (offset + len - 1) / region_;
  if (last - first + 1 >= kStripes) {
    set.set();
  } else {
    for (uint64_t r = first; r <= last; ++r) set.set(r % kStripes);
  }
  return set;
}

void ByteRangeIo::lockStripes(const StripeSet& set, bool exclusive) {
  for (size_t i = 0; i < kStripes; ++i) {
    if (!set.test(i)) continue;
    Stripe& st = stripes_[i];
    std::unique_lock<std::mutex> lock(st.mu);
    if (exclusive) {
      ++st.writers_waiting;
      st.cv.wait(lock, [&] { return !st.writer && st.readers == 0; });
      --st.writers_waiting;
      st.writer = true;
    } else {
      st.cv.wait(lock, [&] { return !st.writer && st.writers_waiting == 0; });
      ++st.readers;
    }
  }
}

bool ByteRangeIo::tryLockStripesShared(const StripeSet& set) {
  for (size_t i = 0; i < kStripes; ++i) {
    if (!set.test(i)) continue;
    Stripe& st = stripes_[i];
    std::lock_guard<std::mutex> lock(st.mu);
    if (st.writer || st.writers_waiting > 0) {
      StripeSet got;
      for (size_t j = 0; j < i; ++j) got.set(j, set.test(j));
      unlockStripes(got, false);
      return false;
    }
    ++st.readers;
  }
  return true;
}

void ByteRangeIo::unlockStripes(const StripeSet& set, bool exclusive) {
  for (size_t i = 0; i < kStripes; ++i) {
    if (!set.test(i)) continue;
    Stripe& st = stripes_[i];
    bool wake;
    {
      std::lock_guard<std::mutex> lock(st.mu);
      if (exclusive) {
        st.writer = false;
        wake = true;
      } else {
        wake = --st.readers == 0;
      }
    }
    if (wake) st.cv.notify_all();
  }
}

// Holds the stripes of a byte range, ascending, for its scope.
class ByteRangeIo::RangeLock {
 public:
  RangeLock(ByteRangeIo& io, uint64_t offset, uint64_t len, bool exclusive)
      : io_(io), exclusive_(exclusive), held_(io.stripesOf(offset, len)) {
    io_.lockStripes(held_, exclusive_);
  }
  ~RangeLock() { io_.unlockStripes(held_, exclusive_); }
  RangeLock(const RangeLock&) = delete;
  RangeLock& operator=(const RangeLock&) = delete;

 private:
  ByteRangeIo& io_;
  const bool exclusive_;
  const StripeSet held_;
};

// An asynchronous aligned write: its stripes stay shared until the device
// completes it, on whatever thread that is.
struct ByteRangeIo::LockedWrite final : IoCompletion {
  LockedWrite(ByteRangeIo& io, StripeSet held, IoCompletion* user) : io(io), held(held), user(user) {}
  void done(Status status) override {
    io.unlockStripes(held, false);
    IoCompletion* u = user;
    delete this;
    u->done(std::move(status));
  }
  ByteRangeIo& io;
  const StripeSet held;
  IoCompletion* const user;
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

void ByteRangeIo::readAsync(uint64_t offset, void* buf, size_t len, IoCompletion* done) {
  if (len == 0 || !aligned(offset, len)) {
    done->done(read(offset, buf, len));
    return;
  }
  device_->readAsync(offset, buf, len, done);
}

void ByteRangeIo::writeAsync(uint64_t offset, const void* buf, size_t len, IoCompletion* done) {
  if (len == 0 || !aligned(offset, len)) {
    done->done(write(offset, buf, len));
    return;
  }
  StripeSet held = stripesOf(offset, len);
  lockStripes(held, false);
  device_->writeAsync(offset, buf, len, new LockedWrite(*this, held, done));
}

bool ByteRangeIo::tryWriteAsync(uint64_t offset, const void* buf, size_t len, IoCompletion* done) {
  if (len == 0 || !aligned(offset, len)) return false;
  StripeSet held = stripesOf(offset, len);
  if (!tryLockStripesShared(held)) return false;
  device_->writeAsync(offset, buf, len, new LockedWrite(*this, held, done));
  return true;
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
