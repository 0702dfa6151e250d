// The packed virtqueue against a packed guest driver in fake memory, over
// several laps of the ring, and against guests that break it.
#include <endian.h>
#include <gtest/gtest.h>
#include <linux/vhost_types.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_ring.h>

#include <cstring>

#include "../nvme/memory_device.h"
#include "packed_guest_driver.h"
#include "virt/blk/virtio_blk.h"
#include "virt/vhost/virtqueue.h"

namespace offcore::virt {
namespace {

using test::Buf;
using test::FakeDirtyLog;
using test::PackedDriver;

std::unique_ptr<VirtQueue> makeQueue(PackedDriver& g, const VirtQueueConfig& cfg, DirtyLog* log = nullptr) {
  auto q = VirtQueue::create(g.mem, cfg, log);
  EXPECT_TRUE(q.ok()) << (q.ok() ? "" : q.error().message);
  return q.ok() ? std::move(*q) : nullptr;
}

Chain popOne(VirtQueue& q) {
  auto r = q.pop();
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  EXPECT_TRUE(r.ok() && r->has_value());
  return r.ok() && r->has_value() ? std::move(**r) : Chain{};
}

bool popsNothing(VirtQueue& q) {
  auto r = q.pop();
  return r.ok() && !r->has_value();
}

void expectBroken(VirtQueue& q, const std::string& needle) {
  auto r = q.pop();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find(needle), std::string::npos) << r.error().message;
  EXPECT_FALSE(q.pop().ok());
}

TEST(PackedVirtQueue, CreateChecksSizeAlignmentBaseAndAreas) {
  PackedDriver g(8);
  auto cfg = g.config();
  cfg.size = 0;
  EXPECT_FALSE(VirtQueue::create(g.mem, cfg, nullptr).ok());
  cfg = g.config();
  cfg.addrs.descUserAddr += 8;
  EXPECT_FALSE(VirtQueue::create(g.mem, cfg, nullptr).ok());
  cfg = g.config();
  cfg.addrs.availUserAddr += 2;
  EXPECT_FALSE(VirtQueue::create(g.mem, cfg, nullptr).ok());
  cfg = g.config();
  cfg.addrs.usedUserAddr = g.mem.uva(g.mem.base() + g.mem.totalBytes() - 2);
  EXPECT_FALSE(VirtQueue::create(g.mem, cfg, nullptr).ok());
  cfg = g.config();
  cfg.addrs.descUserAddr = g.mem.uva(g.mem.base() + g.mem.totalBytes() - 64);
  EXPECT_FALSE(VirtQueue::create(g.mem, cfg, nullptr).ok());
  cfg = g.config();
  cfg.lastAvailIdx = 8 | 0x8000;  // avail index past the ring
  EXPECT_FALSE(VirtQueue::create(g.mem, cfg, nullptr).ok());
  cfg.lastAvailIdx = 0x8000 | (9u | 0x8000) << 16;  // used index past the ring
  EXPECT_FALSE(VirtQueue::create(g.mem, cfg, nullptr).ok());
  // Packed rings need not be a power of two.
  PackedDriver odd(6);
  EXPECT_TRUE(VirtQueue::create(odd.mem, odd.config(), nullptr).ok());
  EXPECT_TRUE(VirtQueue::create(g.mem, g.config(), nullptr).ok());
}

TEST(PackedVirtQueue, PopsAChainAndWritesTheUsedDescriptorBack) {
  PackedDriver g(8);
  auto q = makeQueue(g, g.config());
  EXPECT_TRUE(popsNothing(*q));
  uint64_t a = g.alloc(16), b = g.alloc(512), c = g.alloc(1);
  g.post({{a, 16, false}, {b, 512, true}, {c, 1, true}}, 5);
  Chain ch = popOne(*q);
  EXPECT_EQ(ch.head, 5);
  EXPECT_EQ(ch.descs, 3);
  ASSERT_EQ(ch.segments.size(), 3u);
  EXPECT_EQ(ch.segments[0].data, g.mem.at(a));
  EXPECT_FALSE(ch.segments[0].deviceWritable);
  EXPECT_TRUE(ch.segments[1].deviceWritable);
  EXPECT_EQ(ch.segments[2].len, 1u);
  EXPECT_TRUE(popsNothing(*q));
  EXPECT_FALSE(g.takeUsed(3).has_value());
  q->push(ch, 513);
  auto u = g.takeUsed(3);
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->id, 5);
  EXPECT_EQ(u->len, 513u);
  EXPECT_EQ(q->lastAvailIdx(), (3u | 0x8000) | (3u | 0x8000) << 16);  // avail and used
}

TEST(PackedVirtQueue, AHeadWithTheWrongWrapBitsIsNotAvailable) {
  PackedDriver g(4);
  auto q = makeQueue(g, g.config());
  uint64_t a = g.alloc(8);
  // Flags of the next lap (AVAIL=0, USED=1 while the wrap counter is 1).
  g.setDesc(g.descGpa, 0, a, 8, 1, PackedDriver::kUsed);
  EXPECT_TRUE(popsNothing(*q));
  g.setDesc(g.descGpa, 0, a, 8, 1, PackedDriver::kAvail | PackedDriver::kUsed);  // used, not avail
  EXPECT_TRUE(popsNothing(*q));
}

TEST(PackedVirtQueue, WrapsAroundOverManyLapsWithChainsAcrossTheEnd) {
  for (uint16_t size : {4, 5, 7}) {
    PackedDriver g(size);
    auto q = makeQueue(g, g.config(true));
    uint64_t buf = g.alloc(4096);
    for (int i = 0; i < 60; ++i) {
      uint16_t n = static_cast<uint16_t>(1 + i % 3);
      std::vector<Buf> bufs;
      for (uint16_t k = 0; k < n; ++k) bufs.push_back({buf + 64ull * k, 64, k + 1 == n});
      g.post(bufs, static_cast<uint16_t>(i));
      Chain ch = popOne(*q);
      ASSERT_EQ(ch.head, i) << "size " << size;
      ASSERT_EQ(ch.descs, n);
      ASSERT_EQ(ch.segments.size(), n);
      q->push(ch, 7);
      auto u = g.takeUsed(n);
      ASSERT_TRUE(u.has_value()) << "size " << size << " chain " << i;
      EXPECT_EQ(u->id, i);
      EXPECT_EQ(u->len, 7u);
      EXPECT_TRUE(popsNothing(*q));
      EXPECT_EQ(q->lastAvailIdx() & 0xffff, g.next() | (g.wrap() ? 0x8000 : 0));
      EXPECT_EQ(q->lastAvailIdx() >> 16, q->lastAvailIdx() & 0xffff);  // all used
    }
  }
}

TEST(PackedVirtQueue, ANewQueueResumesFromTheBaseWithItsWrapCounter) {
  PackedDriver g(4);
  auto q = makeQueue(g, g.config());
  uint64_t a = g.alloc(64);
  for (uint16_t i = 0; i < 5; ++i) {
    g.post({{a, 8, true}}, i);
    q->push(popOne(*q), 1);
    ASSERT_TRUE(g.takeUsed(1).has_value());
  }
  uint32_t base = q->lastAvailIdx();
  EXPECT_EQ(base, 1u | 1u << 16);  // index 1 of the second lap (wrap counter 0), all used
  auto cfg = g.config();
  cfg.lastAvailIdx = base;
  q = makeQueue(g, cfg);
  g.post({{a, 8, true}, {a + 8, 8, true}}, 9);
  Chain ch = popOne(*q);
  EXPECT_EQ(ch.head, 9);
  q->push(ch, 16);
  auto u = g.takeUsed(2);
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->id, 9);
}

TEST(PackedVirtQueue, FollowsAnIndirectTableAsOneSlot) {
  PackedDriver g(4);
  auto q = makeQueue(g, g.config(false, true));
  uint64_t table = g.alloc(48), a = g.alloc(16), b = g.alloc(4096), c = g.alloc(1);
  g.setDesc(table, 0, a, 16, 0, 0);
  g.setDesc(table, 1, b, 4096, 0, VRING_DESC_F_WRITE);
  g.setDesc(table, 2, c, 1, 0, VRING_DESC_F_WRITE);
  g.postIndirect(table, 3, 3);
  Chain ch = popOne(*q);
  EXPECT_EQ(ch.head, 3);
  EXPECT_EQ(ch.descs, 1);
  ASSERT_EQ(ch.segments.size(), 3u);
  EXPECT_EQ(ch.segments[1].data, g.mem.at(b));
  q->push(ch, 4097);
  auto u = g.takeUsed(1);
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->len, 4097u);
}

TEST(PackedVirtQueue, MalformedIndirectTablesBreakTheQueue) {
  struct Case {
    const char* needle;
    bool feature;
    uint16_t extraFlags;
    uint32_t bytes;
    bool nested;
    bool outside;
  };
  for (const Case& k :
       {Case{"without VIRTIO_RING_F_INDIRECT_DESC", false, 0, 32, false, false},
        Case{"with NEXT", true, VRING_DESC_F_NEXT, 32, false, false},
        Case{"not a multiple of 16", true, 0, 20, false, false}, Case{"not a multiple of 16", true, 0, 0, false, false},
        Case{"nested INDIRECT", true, 0, 32, true, false}, Case{"indirect table", true, 0, 32, false, true}}) {
    PackedDriver g(4);
    auto q = makeQueue(g, g.config(false, k.feature));
    uint64_t table = g.alloc(32), a = g.alloc(16);
    g.setDesc(table, 0, a, 16, 0, 0);
    g.setDesc(table, 1, k.nested ? table : a, 16, 0, k.nested ? VRING_DESC_F_INDIRECT : 0);
    uint64_t addr = k.outside ? g.mem.base() + g.mem.totalBytes() - 16 : table;
    g.setDesc(g.descGpa, 0, addr, k.bytes, 1, VRING_DESC_F_INDIRECT | k.extraFlags | PackedDriver::availBits(true));
    expectBroken(*q, k.needle);
  }
}

TEST(PackedVirtQueue, AnIndirectDescriptorInsideAChainBreaksTheQueue) {
  PackedDriver g(4);
  auto q = makeQueue(g, g.config(false, true));
  uint64_t table = g.alloc(16), a = g.alloc(16);
  g.setDesc(table, 0, a, 16, 0, 0);
  g.setDesc(g.descGpa, 1, table, 16, 1, VRING_DESC_F_INDIRECT | PackedDriver::availBits(true));
  g.setDesc(g.descGpa, 0, a, 16, 1, VRING_DESC_F_NEXT | PackedDriver::availBits(true));
  expectBroken(*q, "inside a chain");
}

TEST(PackedVirtQueue, AChainLongerThanTheRingBreaksTheQueue) {
  PackedDriver g(4);
  auto q = makeQueue(g, g.config());
  uint64_t a = g.alloc(16);
  // Every slot says NEXT, in both laps' colours: the walk would go round.
  for (uint32_t i = 0; i < 4; ++i) {
    g.setDesc(g.descGpa, i, a, 16, 0, VRING_DESC_F_NEXT | PackedDriver::availBits(true));
  }
  expectBroken(*q, "longer than the queue size");
  // A chain of exactly the ring's size is fine.
  PackedDriver h(4);
  auto q2 = makeQueue(h, h.config());
  uint64_t b = h.alloc(16);
  h.post({{b, 4, false}, {b, 4, false}, {b, 4, false}, {b, 4, true}}, 2);
  EXPECT_EQ(popOne(*q2).descs, 4);
}

TEST(PackedVirtQueue, BuffersOutsideMemoryAndReadableAfterWritableBreakTheQueue) {
  {
    PackedDriver g(4);
    auto q = makeQueue(g, g.config());
    g.post({{g.mem.base() + g.mem.totalBytes() - 8, 16, true}}, 0);
    expectBroken(*q, "outside guest memory");
  }
  {
    PackedDriver g(4);
    auto q = makeQueue(g, g.config());
    g.post({{~0ull - 4, 16, true}}, 0);
    EXPECT_FALSE(q->pop().ok());
  }
  {
    PackedDriver g(4);
    auto q = makeQueue(g, g.config());
    uint64_t a = g.alloc(32);
    g.post({{a, 16, true}, {a + 16, 16, false}}, 0);
    expectBroken(*q, "device-readable descriptor after a device-writable one");
  }
  {
    PackedDriver g(4);
    auto cfg = g.config();
    cfg.maxChainBytes = 100;
    auto q = makeQueue(g, cfg);
    uint64_t a = g.alloc(128);
    g.post({{a, 64, false}, {a + 64, 64, true}}, 0);
    expectBroken(*q, "more than 100 bytes");
  }
}

TEST(PackedVirtQueue, UnpopGivesChainsBackInOrder) {
  PackedDriver g(4);
  auto q = makeQueue(g, g.config());
  uint64_t a = g.alloc(64);
  g.post({{a, 8, true}, {a + 8, 8, true}}, 1);
  g.post({{a + 16, 8, true}}, 2);
  EXPECT_EQ(popOne(*q).head, 1);
  EXPECT_EQ(popOne(*q).head, 2);
  q->unpop(1);
  EXPECT_EQ(popOne(*q).head, 2);
  q->unpop(2);
  EXPECT_EQ(q->lastAvailIdx() & 0xffff, 0x8000u);
  Chain first = popOne(*q);
  EXPECT_EQ(first.head, 1);
  Chain second = popOne(*q);
  EXPECT_EQ(second.head, 2);
  // Both as one unit: the driver sees them in ring order.
  std::vector<Chain> chains{first, second};
  std::vector<uint32_t> written{16, 8};
  q->pushMany(chains, written);
  auto u1 = g.takeUsed(2);
  auto u2 = g.takeUsed(1);
  ASSERT_TRUE(u1 && u2);
  EXPECT_EQ(u1->id, 1);
  EXPECT_EQ(u1->len, 16u);
  EXPECT_EQ(u2->id, 2);
  EXPECT_EQ(u2->len, 8u);
}

TEST(PackedVirtQueue, CompletionsMayComeBackOutOfOrder) {
  PackedDriver g(8);
  auto q = makeQueue(g, g.config());
  uint64_t a = g.alloc(64);
  g.post({{a, 8, true}, {a + 8, 8, true}}, 4);
  g.post({{a + 16, 8, true}}, 6);
  Chain c4 = popOne(*q), c6 = popOne(*q);
  q->push(c6, 3);
  q->push(c4, 5);
  // Used descriptors fill the ring in completion order; slots per buffer.
  auto u = g.takeUsed(1);
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->id, 6);
  u = g.takeUsed(2);
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->id, 4);
  EXPECT_EQ(q->lastAvailIdx(), (0x8000u | 3) | (0x8000u | 3) << 16);
}

TEST(PackedVirtQueue, DriverEventFlagsEnableAndDisableInterrupts) {
  PackedDriver g(8);
  auto q = makeQueue(g, g.config());
  uint64_t a = g.alloc(64);
  EXPECT_FALSE(q->shouldNotify());  // nothing pushed
  g.post({{a, 8, true}}, 0);
  q->push(popOne(*q), 1);
  EXPECT_TRUE(q->shouldNotify());
  EXPECT_FALSE(q->shouldNotify());
  g.setDriverEvent(VRING_PACKED_EVENT_FLAG_DISABLE);
  g.post({{a, 8, true}}, 1);
  q->push(popOne(*q), 1);
  EXPECT_FALSE(q->shouldNotify());
  // DESC without EVENT_IDX is not ours to honour: notify.
  g.setDriverEvent(VRING_PACKED_EVENT_FLAG_DESC, 0x8000 | 7);
  g.post({{a, 8, true}}, 2);
  q->push(popOne(*q), 1);
  EXPECT_TRUE(q->shouldNotify());
}

TEST(PackedVirtQueue, EventIdxNotifiesWhenTheDriversPositionIsCrossedAcrossLaps) {
  PackedDriver g(4);
  auto q = makeQueue(g, g.config(true));
  uint64_t a = g.alloc(64);
  auto one = [&](uint16_t id) {
    g.post({{a, 8, true}}, id);
    q->push(popOne(*q), 1);
    EXPECT_TRUE(g.takeUsed(1).has_value());
  };
  // Interrupt wanted once the used descriptor at index 2, lap 1, is written.
  g.setDriverEvent(VRING_PACKED_EVENT_FLAG_DESC, 0x8000 | 2);
  one(0);  // used position 0 -> 1
  EXPECT_FALSE(q->shouldNotify());
  one(1);  // 1 -> 2
  EXPECT_FALSE(q->shouldNotify());
  one(2);  // 2 -> 3: crosses index 2
  EXPECT_TRUE(q->shouldNotify());
  // Index 0 of the next lap (wrap counter 0), crossed by 3 -> 0 -> 1.
  g.setDriverEvent(VRING_PACKED_EVENT_FLAG_DESC, 0);
  one(3);  // 3 -> 0 (lap 2)
  EXPECT_FALSE(q->shouldNotify());
  one(4);  // 0 -> 1
  EXPECT_TRUE(q->shouldNotify());
  // An event in a lap already past is not crossed again.
  g.setDriverEvent(VRING_PACKED_EVENT_FLAG_DESC, 0x8000 | 3);
  one(5);
  EXPECT_FALSE(q->shouldNotify());
}

TEST(PackedVirtQueue, KickSuppressionWritesTheDeviceEventFlags) {
  PackedDriver g(4);
  FakeDirtyLog log;
  auto q = makeQueue(g, g.config(true), &log);
  q->setKicksEnabled(false);
  EXPECT_EQ(g.deviceEventFlags(), VRING_PACKED_EVENT_FLAG_DISABLE);
  EXPECT_TRUE(log.covers(g.deviceGpa, 4));
  q->setKicksEnabled(true);
  EXPECT_EQ(g.deviceEventFlags(), VRING_PACKED_EVENT_FLAG_ENABLE);
}

TEST(PackedVirtQueue, DirtyLogCoversWrittenBytesAndTheUsedDescriptor) {
  PackedDriver g(4);
  FakeDirtyLog log;
  auto q = makeQueue(g, g.config(), &log);
  uint64_t hdr = g.alloc(16), data = g.alloc(8192), st = g.alloc(1);
  g.post({{hdr, 16, false}, {data, 8192, true}, {st, 1, true}}, 0);
  g.post({{hdr, 16, false}}, 1);  // takes slot 3 and wraps
  Chain c0 = popOne(*q), c1 = popOne(*q);
  q->push(c0, 5000);
  q->push(c1, 0);
  EXPECT_TRUE(log.covers(data, 5000));
  EXPECT_FALSE(log.covers(data, 5001));
  EXPECT_FALSE(log.covers(hdr, 1));
  EXPECT_TRUE(log.covers(g.descGpa, 16));           // used slot 0
  EXPECT_TRUE(log.covers(g.descGpa + 16 * 3, 16));  // used slot 3
  // Off: nothing more is recorded.
  q->setDirtyLog(nullptr);
  size_t n = log.marks.size();
  g.post({{data, 8, true}}, 2);
  q->push(popOne(*q), 8);
  EXPECT_EQ(log.marks.size(), n);
}

TEST(PackedVirtQueue, DirtyLogUsesTheLogAddressForTheDeviceArea) {
  PackedDriver g(4);
  FakeDirtyLog log;
  auto cfg = g.config();
  cfg.addrs.flags = 1u << VHOST_VRING_F_LOG;
  cfg.addrs.logGuestAddr = 0x4000;
  auto q = makeQueue(g, cfg, &log);
  q->setKicksEnabled(false);
  EXPECT_TRUE(log.covers(0x4000, 4));
}

TEST(PackedVirtQueue, ADescriptorRewrittenAfterPopChangesNothing) {
  PackedDriver g(4);
  auto q = makeQueue(g, g.config());
  uint64_t a = g.alloc(16);
  g.post({{a, 16, true}}, 0);
  Chain ch = popOne(*q);
  g.setDesc(g.descGpa, 0, ~0ull, 1 << 30, 0, PackedDriver::availBits(true) | VRING_DESC_F_WRITE);
  EXPECT_EQ(ch.segments[0].data, g.mem.at(a));
  EXPECT_EQ(ch.segments[0].len, 16u);
}

// virtio-blk through a packed ring: what the guest sees in the used slot.
TEST(PackedVirtQueue, VirtioBlkServesRequestsOverAPackedRing) {
  offcore::test::MemoryDevice dev(1 << 20);
  std::vector<uint8_t> block(4096, 0x5a);
  ASSERT_TRUE(dev.write(8192, block.data(), block.size()).ok());
  auto blk = makeVirtioBlk(dev, {});
  EXPECT_TRUE(blk->packedRing());
  PackedDriver g(8);
  auto q = makeQueue(g, g.config(true, true));
  for (int lap = 0; lap < 6; ++lap) {
    uint64_t hdr = g.alloc(16), data = g.alloc(4096), status = g.alloc(1);
    virtio_blk_outhdr h{htole32(VIRTIO_BLK_T_IN), 0, htole64(16)};
    std::memcpy(g.mem.at(hdr), &h, sizeof h);
    g.post({{hdr, 16, false}, {data, 4096, true}, {status, 1, true}}, static_cast<uint16_t>(lap));
    Chain c = popOne(*q);
    q->push(c, blk->handle(0, c));
    auto u = g.takeUsed(3);
    ASSERT_TRUE(u.has_value()) << "lap " << lap;
    EXPECT_EQ(u->id, lap);
    EXPECT_EQ(u->len, 4097u);
    EXPECT_EQ(*g.mem.at(status), VIRTIO_BLK_S_OK);
    EXPECT_EQ(*g.mem.at(data + 100), 0x5a);
  }
}

}  // namespace
}  // namespace offcore::virt
