// A BlockDevice in memory, for protocol tests that need no store.
#pragma once

#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "block/block_device.h"

namespace offcore::test {

class MemoryDevice : public BlockDevice {
 public:
  explicit MemoryDevice(uint64_t size, bool read_only = false) : data_(size, 0), read_only_(read_only) {}
  uint64_t sizeBytes() const override { return data_.size(); }
  uint32_t blockSize() const override { return 4096; }
  Status read(uint64_t off, void* buf, size_t len) override {
    OC_TRY(check(off, len));
    std::lock_guard<std::mutex> l(m_);
    std::memcpy(buf, data_.data() + off, len);
    return okStatus();
  }
  Status write(uint64_t off, const void* buf, size_t len) override {
    OC_TRY(check(off, len));
    if (read_only_) return makeError("read-only", kBlockReadOnly);
    std::lock_guard<std::mutex> l(m_);
    std::memcpy(data_.data() + off, buf, len);
    return okStatus();
  }
  // hold_flush: a flush waits (up to 10 s) until it is cleared, as an
  // fdatasync behind a slow disk would.
  Status flush() override {
    for (int i = 0; i < 10000 && hold_flush.load(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    flushes++;
    return okStatus();
  }
  Status discard(uint64_t off, uint64_t len) override {
    discards++;
    return writeZeroes(off, len);
  }
  Status writeZeroes(uint64_t off, uint64_t len) override {
    OC_TRY(check(off, len));
    std::lock_guard<std::mutex> l(m_);
    std::memset(data_.data() + off, 0, len);
    return okStatus();
  }
  std::atomic<int> flushes{0}, discards{0};
  std::atomic<bool> hold_flush{false};

 private:
  Status check(uint64_t off, uint64_t len) const {
    if (off % 4096 || len % 4096) return makeError("misaligned", kBlockInvalid);
    if (off > data_.size() || len > data_.size() - off) return makeError("range", kBlockOutOfRange);
    return okStatus();
  }
  std::mutex m_;
  std::vector<uint8_t> data_;
  bool read_only_;
};

}  // namespace offcore::test
