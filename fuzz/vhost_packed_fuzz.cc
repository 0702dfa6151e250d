// A hostile guest's memory for one packed virtqueue (virtio 1.1 §2.7): the
// fuzzer's bytes are the whole guest RAM (descriptor ring, event areas,
// request buffers), served by virtio-blk over an in-memory device. The queue
// must stop on a broken ring and never touch memory outside the guest
// region, a vector of exactly that size so ASan sees any overrun.
//
// Input: byte 0 = queue size - 1 in bits 0-3 (1..16, any size: packed rings
// need not be a power of two), EVENT_IDX bit 4, INDIRECT bit 5, dirty
// logging bit 6, kicks off while draining bit 7; byte 1 = SET_VRING_BASE
// (index in bits 0-6, taken modulo the size, wrap counter bit 7); byte 2 =
// which pops are given back once with unpop() (bit i for pop i mod 8); the
// rest is guest memory from gpa 0. Rings: desc at 0, driver event area at
// 16*n, device event area at 16*n+4 (fuzz/corpus/make_vhost_packed_seeds.py
// writes valid requests).
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "../tests/nvme/memory_device.h"
#include "../tests/virt/fake_guest_memory.h"
#include "virt/blk/virtio_blk.h"
#include "virt/vhost/virtqueue.h"

namespace {

constexpr size_t kGuestBytes = 32 * 1024;

class CheckingLog : public offcore::virt::DirtyLog {
 public:
  void mark(uint64_t gpa, uint64_t len) override {
    if (len == 0 || gpa >= kGuestBytes || len > kGuestBytes - gpa) __builtin_trap();
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace offcore::virt;
  if (size < 3) return 0;
  test::FakeGuestMemory mem(0, kGuestBytes, /*uvaDelta=*/0x10000000);
  std::memcpy(mem.bytes().data(), data + 3, std::min(size - 3, kGuestBytes));

  uint16_t n = 1 + (data[0] & 15);
  VirtQueueConfig cfg;
  cfg.size = n;
  cfg.packed = true;
  cfg.eventIdx = data[0] & 16;
  cfg.indirect = data[0] & 32;
  uint32_t pos = ((data[1] & 0x7f) % n) | ((data[1] & 0x80) << 8);
  cfg.lastAvailIdx = pos | pos << 16;  // everything used, as after GET_VRING_BASE
  cfg.maxChainBytes = 64 << 10;
  cfg.addrs = {mem.uva(0), mem.uva(16ull * n), mem.uva(16ull * n + 4), 0, 0};
  CheckingLog log;
  auto q = VirtQueue::create(mem, cfg, data[0] & 64 ? &log : nullptr);
  if (!q.ok()) __builtin_trap();  // every config above is valid

  offcore::test::MemoryDevice dev(64 * 1024, /*read_only=*/false);
  auto blk = makeVirtioBlk(dev, {});

  if (data[0] & 128) (*q)->setKicksEnabled(false);
  for (int i = 0; i < 4 * n; i++) {
    auto c = (*q)->pop();
    if (!c.ok() || !c->has_value()) break;
    if ((data[2] >> (i % 8)) & 1) {
      uint32_t before = (*q)->lastAvailIdx();
      (*q)->unpop(1);
      auto again = (*q)->pop();
      // The same chain comes back from the same bytes.
      if (!again.ok() || !again->has_value() || (*again)->head != (*c)->head || (*q)->lastAvailIdx() != before) {
        __builtin_trap();
      }
    }
    uint64_t writable = 0;
    for (const Segment& s : (*c)->segments) {
      if (s.data < mem.bytes().data() || s.data + s.len > mem.bytes().data() + kGuestBytes) __builtin_trap();
      if (s.deviceWritable) writable += s.len;
    }
    if ((*c)->descs == 0 || (*c)->descs > n) __builtin_trap();
    uint32_t written = blk->handle(0, **c);
    if (written > writable) __builtin_trap();
    (*q)->push(**c, written);
    (void)(*q)->shouldNotify();
  }
  (*q)->setKicksEnabled(true);
  (void)(*q)->pop();
  return 0;
}
