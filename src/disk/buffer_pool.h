// BufferPool: reusable data buffers for requests that start on one thread
// and finish on another (a FUSE request read by a libfuse worker, answered
// by the NVMe/TCP queue's reader thread). Sizes are powers of two from
// 4 KiB; the pool keeps at most `keep_bytes` of free buffers and frees the
// rest, so a burst of large requests does not pin memory. Uninitialised on
// purpose: every user fills what it sends. Thread-safe (one small mutex,
// held only to push or pop a pointer).
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <vector>

namespace offcore {

class BufferPool {
 public:
  explicit BufferPool(size_t keep_bytes) : keep_bytes_(keep_bytes) {}
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  // A buffer of at least `size` bytes; give it back with give().
  struct Buffer {
    char* data = nullptr;
    size_t capacity = 0;
  };
  Buffer take(size_t size);
  void give(Buffer buffer);

  size_t freeBytes() const;

 private:
  static constexpr int kClasses = 40;
  const size_t keep_bytes_;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<char[]>> free_[kClasses];  // by log2(capacity)
  size_t free_bytes_ = 0;
};

}  // namespace offcore
