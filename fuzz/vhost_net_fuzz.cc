// A hostile guest under virtio-net: the fuzzer's bytes are the guest RAM of
// one receive and one transmit split virtqueue, and the frames a fake tap
// hands the device. Receive must fill only writable guest buffers inside
// guest memory (a vector of exactly that size, so ASan sees any overrun),
// never report more bytes than a chain holds, and stop on a broken ring;
// transmit must drop what it cannot send.
//
// Input: byte 0 = log2(queue size) in bits 0-2, EVENT_IDX bit 3, INDIRECT
// bit 4, dirty logging bit 5, MRG_RXBUF bit 6, VERSION_1 bit 7; byte 1 =
// frames the tap has (0-7); bytes 2-3 = their length (LE, at most 9000);
// the rest is guest memory from gpa 0. Rings: rx desc at 0, avail at 16*n,
// used after it (4-aligned); tx the same from gpa 8192. Frame bytes are the
// start of guest memory (fuzz/corpus/make_vhost_net_seeds.py).
#include <linux/virtio_config.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "../tests/virt/fake_guest_memory.h"
#include "../tests/virt/fake_tap.h"
#include "virt/net/virtio_net.h"
#include "virt/vhost/virtqueue.h"

namespace {

constexpr size_t kGuestBytes = 32 * 1024;
constexpr uint64_t kTxBase = 8192;

class CheckingLog : public offcore::virt::DirtyLog {
 public:
  void mark(uint64_t gpa, uint64_t len) override {
    if (len == 0 || gpa >= kGuestBytes || len > kGuestBytes - gpa) __builtin_trap();
  }
};

offcore::virt::VirtQueueConfig ring(const offcore::virt::test::FakeGuestMemory& mem, uint8_t flags, uint64_t base,
                                    uint16_t lastAvail) {
  offcore::virt::VirtQueueConfig cfg;
  uint16_t n = 1u << (flags & 7);
  cfg.size = n;
  cfg.eventIdx = flags & 8;
  cfg.indirect = flags & 16;
  cfg.lastAvailIdx = lastAvail;
  cfg.maxChainBytes = 64 << 10;
  uint64_t avail = base + 16ull * n, used = (avail + 6 + 2ull * n + 3) & ~3ull;
  cfg.addrs = {mem.uva(base), mem.uva(avail), mem.uva(used), 0, 0};
  return cfg;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace offcore::virt;
  if (size < 4) return 0;
  test::FakeGuestMemory mem(0, kGuestBytes, /*uvaDelta=*/0x10000000);
  std::memcpy(mem.bytes().data(), data + 4, std::min(size - 4, kGuestBytes));
  const uint8_t flags = data[0];
  const int frames = data[1] & 7;
  const size_t frameLen = std::min<size_t>(data[2] | (data[3] << 8), 9000);

  test::FakeTap tap;
  auto net = makeVirtioNet(tap);
  uint64_t features = 1ull << vnet::kFGuestCsum;
  if (flags & 64) features |= 1ull << vnet::kFMrgRxbuf;
  if (flags & 128) features |= 1ull << VIRTIO_F_VERSION_1;
  if (!net->setFeatures(features).ok()) __builtin_trap();
  (void)net->configSpace(2);

  CheckingLog log;
  DirtyLog* lp = (flags & 32) ? &log : nullptr;
  auto rx = VirtQueue::create(mem, ring(mem, flags, 0, 0), lp);
  auto tx = VirtQueue::create(mem, ring(mem, flags, kTxBase, 0), lp);
  if (!rx.ok() || !tx.ok()) return 0;

  std::vector<uint8_t> frame(mem.bytes().begin(), mem.bytes().begin() + frameLen);
  for (int i = 0; i < frames; ++i) tap.inject(frame);
  for (int round = 0; round < 4; ++round) {
    VhostDevice::Fill r = net->fill(0, **rx);
    (void)(*rx)->shouldNotify();
    if (r == VhostDevice::Fill::kBroken) break;
  }

  const uint16_t n = 1u << (flags & 7);
  for (int i = 0; i < 2 * n; i++) {
    auto c = (*tx)->pop();
    if (!c.ok() || !c->has_value()) break;
    if (net->handle(1, **c) != 0) __builtin_trap();
    (*tx)->push(**c, 0);
  }
  while (!tap.take().empty()) {}
  VirtioNetStats s = net->stats();
  if (s.rxFrames > static_cast<uint64_t>(frames)) __builtin_trap();
  return 0;
}
