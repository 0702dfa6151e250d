// LateReplica: a replica whose device cannot be opened when the nexus
// starts (its storage host is down). Until it can, every request fails at
// once, so the nexus counts it faulted and runs degraded; the nexus's probe
// (a synchronous read) tries to open it again, at most once a second, and
// from then on every call goes to the opened device, so the rebuild brings
// it back. The disk thus starts, and serves, with a storage host down.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>

#include "block/block_device.h"

namespace offcore::nexus {

class LateReplica final : public BlockDevice {
 public:
  using Opener = std::function<Result<std::shared_ptr<BlockDevice>>()>;
  // size and block size: the other replicas' (an opened device must match).
  // polled: whether the opened device will have a completion fd (as the
  // other replicas do); this object then has one from the start.
  static Result<std::shared_ptr<LateReplica>> make(Opener open, uint64_t size, uint32_t block_size, bool polled);
  ~LateReplica() override;

  uint64_t sizeBytes() const override { return size_; }
  uint32_t blockSize() const override { return block_size_; }
  Status read(uint64_t offset, void* buf, size_t len) override;
  Status write(uint64_t offset, const void* buf, size_t len) override;
  Status flush() override;
  Status discard(uint64_t offset, uint64_t len) override;
  Status writeZeroes(uint64_t offset, uint64_t len) override;
  void readAsync(uint64_t offset, void* buf, size_t len, IoCompletion* done) override;
  void writeAsync(uint64_t offset, const void* buf, size_t len, IoCompletion* done) override;
  int completionFd() override { return epoll_fd_; }
  void reapCompletions() override;
  void plug() override;
  void unplug() override;

  bool opened() const { return inner_.load(std::memory_order_acquire) != nullptr; }

 private:
  LateReplica(Opener open, uint64_t size, uint32_t block_size)
      : open_(std::move(open)), size_(size), block_size_(block_size) {}
  BlockDevice* tryOpen();  // the device, opening it if due; null if not open
  static Status notOpen();

  Opener open_;
  const uint64_t size_;
  const uint32_t block_size_;
  int epoll_fd_ = -1, idle_fd_ = -1;
  std::mutex open_mu_;
  std::shared_ptr<BlockDevice> device_;  // set once, under open_mu_
  std::atomic<BlockDevice*> inner_{nullptr};
  int64_t last_try_ms_ = 0;
  BlockDevice* plugged_ = nullptr;  // the reaping thread's
};

}  // namespace offcore::nexus
