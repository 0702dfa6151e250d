// ByteRangeIo: byte-granular I/O on a BlockDevice, which only takes whole
// blocks. FUSE hands us whatever the kernel or an application asked for
// (a 100-byte write at offset 10), so partial blocks go through
// read-modify-write here.
//
// Concurrency: an RMW must not lose a concurrent write to the same block
// (read old block, other writer writes, we write old+ours back). Ranges are
// guarded by a striped reader/writer lock over 64 KiB regions:
//   - aligned writes, discards and zeroings take their regions shared, so they
//     run in parallel with each other (no global lock on aligned I/O);
//   - anything touching a partial block takes its covering regions exclusive;
//   - reads take no lock: a read racing a write may see either version, as
//     on any disk, and an RMW only ever writes back whole consistent blocks.
// Stripes are always locked in ascending index order, so requests never
// deadlock whatever ranges they cover. An asynchronous aligned write holds
// its stripes shared until the device completes it, and the device's
// completion thread releases them, so a stripe is a small counter lock
// (mutex + condition variable) that any thread may release, not a
// std::shared_mutex. Writers waiting for a stripe hold off new readers.
#pragma once

#include <atomic>
#include <bitset>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>

#include "base/result.h"
#include "block/block_device.h"

namespace offcore {

class ByteRangeIo {
 public:
  explicit ByteRangeIo(std::shared_ptr<BlockDevice> device);
  ByteRangeIo(const ByteRangeIo&) = delete;
  ByteRangeIo& operator=(const ByteRangeIo&) = delete;

  BlockDevice& device() { return *device_; }

  // The range [offset, offset + len) must lie within the device (callers
  // clamp at the end of the disk; going past it is a bug, not an I/O error).
  Status read(uint64_t offset, void* buf, size_t len);
  Status write(uint64_t offset, const void* buf, size_t len);
  // Whole blocks inside the range are discarded (or zeroed); the partial
  // blocks at either edge are zeroed by read-modify-write, so the whole range
  // reads as zeroes afterwards in both cases.
  // The asynchronous forms: aligned requests go to the device's async path
  // (an aligned write keeps its stripes shared until it completes);
  // unaligned ones run synchronously on the calling thread, then complete.
  void readAsync(uint64_t offset, void* buf, size_t len, IoCompletion* done);
  void writeAsync(uint64_t offset, const void* buf, size_t len, IoCompletion* done);
  // writeAsync for a thread that must never wait (a poller): false, with
  // nothing started, when the request is unaligned or a read-modify-write
  // holds one of its blocks; the caller then hands it to a thread that may
  // wait.
  bool tryWriteAsync(uint64_t offset, const void* buf, size_t len, IoCompletion* done);
  Status discard(uint64_t offset, uint64_t len);
  Status writeZeroes(uint64_t offset, uint64_t len);

  uint64_t readModifyWrites() const { return rmw_.load(std::memory_order_relaxed); }

  static constexpr size_t kStripes = 64;
  static constexpr uint64_t kRegionBytes = 64 * 1024;

 private:
  class RangeLock;
  struct LockedWrite;
  using StripeSet = std::bitset<kStripes>;
  struct alignas(64) Stripe {
    std::mutex mu;
    std::condition_variable cv;
    uint32_t readers = 0;
    uint32_t writers_waiting = 0;
    bool writer = false;
  };
  // The stripes a byte range's regions map to.
  StripeSet stripesOf(uint64_t offset, uint64_t len) const;
  void lockStripes(const StripeSet& set, bool exclusive);
  // Shared, all or nothing, without waiting.
  bool tryLockStripesShared(const StripeSet& set);
  void unlockStripes(const StripeSet& set, bool exclusive);

  bool aligned(uint64_t offset, uint64_t len) const { return offset % bs_ == 0 && len % bs_ == 0; }
  Status zeroRange(uint64_t offset, uint64_t len, bool discard);
  // Zeroes [offset, offset+len) inside one block by read-modify-write.
  Status zeroPartialBlock(uint64_t offset, uint64_t len);

  std::shared_ptr<BlockDevice> device_;
  const uint64_t bs_;
  const uint64_t region_;  // lock granularity: a multiple of the block size
  Stripe stripes_[kStripes];
  std::atomic<uint64_t> rmw_{0};
};

}  // namespace offcore
