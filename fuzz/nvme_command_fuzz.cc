// The command handlers with arbitrary SQEs and data: admin and I/O on an
// enabled controller over an in-memory namespace. No input may crash, hang
// or return data longer than the transfer it asked for.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>

#include "nvme/target/controller.h"

namespace {

class TinyDevice : public offcore::BlockDevice {
 public:
  uint64_t sizeBytes() const override { return sizeof data_; }
  uint32_t blockSize() const override { return 4096; }
  offcore::Status read(uint64_t o, void* b, size_t l) override {
    if (o > sizeof data_ || l > sizeof data_ - o) return offcore::makeError("range", offcore::kBlockOutOfRange);
    std::memcpy(b, data_ + o, l);
    return offcore::okStatus();
  }
  offcore::Status write(uint64_t o, const void* b, size_t l) override {
    if (o > sizeof data_ || l > sizeof data_ - o) return offcore::makeError("range", offcore::kBlockOutOfRange);
    std::memcpy(data_ + o, b, l);
    return offcore::okStatus();
  }
  offcore::Status flush() override { return offcore::okStatus(); }
  offcore::Status discard(uint64_t o, uint64_t l) override { return writeZeroes(o, l); }
  offcore::Status writeZeroes(uint64_t o, uint64_t l) override {
    if (o > sizeof data_ || l > sizeof data_ - o) return offcore::makeError("range", offcore::kBlockOutOfRange);
    std::memset(data_ + o, 0, l);
    return offcore::okStatus();
  }

 private:
  uint8_t data_[64 * 4096] = {};
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace offcore::nvme;
  if (size < 1 + kSqeSize) return 0;
  static auto device = std::make_shared<TinyDevice>();
  Namespace ns;
  ns.device = device;
  auto sub = std::make_shared<Subsystem>("nqn.fuzz:sub", "S", std::vector<Namespace>{ns}, std::vector<std::string>{});
  TargetLimits limits;
  Controller ctrl(1, sub, "nqn.fuzz:host", {}, 0, limits);
  Sqe enable;
  enable.b[40] = 0;
  putLe32(enable.b + 44, kPropCc);
  putLe64(enable.b + 48, kCcEnable | (6u << 16) | (4u << 20));
  (void)ctrl.propertySet(enable);
  Command cmd;
  std::memcpy(cmd.sqe.b, data + 1, kSqeSize);
  cmd.data.assign(data + 1 + kSqeSize, data + size);
  cmd.transfer_len = static_cast<uint32_t>(getLe32(cmd.sqe.b + kSqeSgl + 8) % (2u << 20));
  Completion c;
  switch (data[0] % 4) {
    case 0: c = ctrl.admin(cmd); break;
    case 1: c = ctrl.io(cmd); break;
    case 2: c = ctrl.propertyGet(cmd.sqe); break;
    default: c = ctrl.propertySet(cmd.sqe); break;
  }
  if (c.status == kScSuccess && c.data.size() > (8u << 20)) __builtin_trap();
  return 0;
}
