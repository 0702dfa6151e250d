// A hostile guest's memory: the fuzzer's bytes are the whole guest RAM
// (descriptor table, avail and used rings, request buffers) of one split
// virtqueue, served by virtio-blk over an in-memory device. The queue must
// stop on a broken ring and never touch memory outside the guest region,
// which is a vector of exactly that size so ASan sees any overrun.
//
// Input: byte 0 = log2(queue size) in bits 0-2, EVENT_IDX bit 3, INDIRECT
// bit 4, dirty logging bit 5, kicks off while draining bit 6, read-only
// bit 7; byte 1 = lastAvailIdx; the rest is guest memory from gpa 0.
// Rings: desc at 0, avail at 16*n, used at the next 4-aligned address after
// the avail ring (fuzz/corpus/make_vhost_seeds.py writes valid requests).
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "../tests/nvme/memory_device.h"
#include "../tests/virt/fake_guest_memory.h"
#include "virt/blk/virtio_blk.h"
#include "virt/vhost/virtqueue.h"

namespace {

constexpr size_t kGuestBytes = 32 * 1024;

// Counts marks and checks they stay inside guest memory, as the used ring
// and every written buffer do.
class CheckingLog : public offcore::virt::DirtyLog {
 public:
  void mark(uint64_t gpa, uint64_t len) override {
    if (len == 0 || gpa >= kGuestBytes || len > kGuestBytes - gpa) __builtin_trap();
    marks++;
  }
  uint64_t marks = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace offcore::virt;
  if (size < 2) return 0;
  test::FakeGuestMemory mem(0, kGuestBytes, /*uvaDelta=*/0x10000000);
  std::memcpy(mem.bytes().data(), data + 2, std::min(size - 2, kGuestBytes));

  uint16_t n = 1u << (data[0] & 7);
  VirtQueueConfig cfg;
  cfg.size = n;
  cfg.eventIdx = data[0] & 8;
  cfg.indirect = data[0] & 16;
  cfg.lastAvailIdx = data[1];
  cfg.maxChainBytes = 64 << 10;
  uint64_t avail = 16ull * n, used = (avail + 6 + 2ull * n + 3) & ~3ull;
  cfg.addrs = {mem.uva(0), mem.uva(avail), mem.uva(used), 0, 0};
  CheckingLog log;
  auto q = VirtQueue::create(mem, cfg, data[0] & 32 ? &log : nullptr);
  if (!q.ok()) return 0;

  offcore::test::MemoryDevice dev(64 * 1024, /*read_only=*/false);
  VirtioBlkOptions opts;
  opts.readOnly = data[0] & 128;
  auto blk = makeVirtioBlk(dev, opts);
  (void)blk->configSpace(1);

  if (data[0] & 64) (*q)->setKicksEnabled(false);
  for (int i = 0; i < 4 * n; i++) {
    auto c = (*q)->pop();
    if (!c.ok() || !c->has_value()) break;
    uint64_t writable = 0;
    for (const Segment& s : (*c)->segments) {
      if (s.data < mem.bytes().data() || s.data + s.len > mem.bytes().data() + kGuestBytes) __builtin_trap();
      if (s.deviceWritable) writable += s.len;
    }
    uint32_t written = blk->handle(0, **c);
    if (written > writable) __builtin_trap();
    (*q)->push(**c, written);
    (void)(*q)->shouldNotify();
  }
  (*q)->setKicksEnabled(true);
  (void)(*q)->pop();
  return 0;
}
