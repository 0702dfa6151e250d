// A BlockDevice that forwards every call to another; disk tests override
// what they watch or break.
#pragma once

#include <memory>

#include "block/block_device.h"

namespace offcore::test {

class WrappedDevice : public BlockDevice {
 public:
  explicit WrappedDevice(std::shared_ptr<BlockDevice> inner) : inner_(std::move(inner)) {}
  uint64_t sizeBytes() const override { return inner_->sizeBytes(); }
  uint32_t blockSize() const override { return inner_->blockSize(); }
  Status read(uint64_t o, void* b, size_t n) override { return inner_->read(o, b, n); }
  Status write(uint64_t o, const void* b, size_t n) override { return inner_->write(o, b, n); }
  Status flush() override { return inner_->flush(); }
  Status discard(uint64_t o, uint64_t n) override { return inner_->discard(o, n); }
  Status writeZeroes(uint64_t o, uint64_t n) override { return inner_->writeZeroes(o, n); }

 protected:
  std::shared_ptr<BlockDevice> inner_;
};

}  // namespace offcore::test
