// Fakes for nexus tests: a replica that fails on command, and a journal in
// memory.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>

#include "../disk/wrapped_device.h"
#include "../nvme/memory_device.h"
#include "nexus/nexus_journal.h"

namespace offcore::test {

// A replica over a MemoryDevice that can be made to fail reads or writes
// (as a lost target would) and counts what reached it.
class FaultyDevice final : public WrappedDevice {
 public:
  explicit FaultyDevice(std::shared_ptr<BlockDevice> inner) : WrappedDevice(std::move(inner)) {}
  Status read(uint64_t o, void* b, size_t n) override {
    reads++;
    if (fail_reads) return makeError("replica down", kBlockIo);
    return inner_->read(o, b, n);
  }
  Status write(uint64_t o, const void* b, size_t n) override {
    writes++;
    if (fail_writes) return makeError("replica down", kBlockIo);
    return inner_->write(o, b, n);
  }
  Status flush() override {
    if (fail_writes) return makeError("replica down", kBlockIo);
    return inner_->flush();
  }
  void down() { fail_reads = fail_writes = true; }
  void up() { fail_reads = fail_writes = false; }
  std::atomic<bool> fail_reads{false}, fail_writes{false};
  std::atomic<uint64_t> reads{0}, writes{0};
};

class MemoryJournal final : public nexus::NexusJournal {
 public:
  Result<std::optional<nexus::NexusRecord>> load() override {
    std::lock_guard<std::mutex> l(m);
    return record;
  }
  Status save(const nexus::NexusRecord& r) override {
    std::lock_guard<std::mutex> l(m);
    if (fail) return makeError("journal disk full", 28);
    record = r;
    saves++;
    return okStatus();
  }
  std::optional<nexus::NexusRecord> get() {
    std::lock_guard<std::mutex> l(m);
    return record;
  }
  std::mutex m;
  std::optional<nexus::NexusRecord> record;
  std::atomic<int> saves{0};
  std::atomic<bool> fail{false};
};

}  // namespace offcore::test
