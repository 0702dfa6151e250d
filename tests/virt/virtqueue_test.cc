// The split virtqueue against a guest driver laid out in fake memory, and
// against guests that break the ring every way the device must survive.
#include "virt/vhost/virtqueue.h"

#include <gtest/gtest.h>
#include <linux/vhost_types.h>
#include <linux/virtio_ring.h>

#include "guest_driver.h"

namespace offcore::virt {
namespace {

using test::Buf;
using test::FakeDirtyLog;
using test::GuestDriver;

std::unique_ptr<VirtQueue> makeQueue(GuestDriver& g, const VirtQueueConfig& cfg, DirtyLog* log = nullptr) {
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

// The next pop() fails, and so does every later one: the queue is broken.
void expectBroken(VirtQueue& q, const std::string& needle) {
  auto r = q.pop();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find(needle), std::string::npos) << r.error().message;
  EXPECT_FALSE(q.pop().ok());
}

TEST(VirtQueue, CreateRejectsBadSizesAddressesAndRingsOutsideMemory) {
  GuestDriver g(8);
  auto cfg = g.config();
  cfg.size = 6;
  EXPECT_FALSE(VirtQueue::create(g.mem, cfg, nullptr).ok());
  cfg.size = 0;
  EXPECT_FALSE(VirtQueue::create(g.mem, cfg, nullptr).ok());
  cfg = g.config();
  cfg.addrs.descUserAddr += 8;
  EXPECT_FALSE(VirtQueue::create(g.mem, cfg, nullptr).ok());
  cfg = g.config();
  cfg.addrs.usedUserAddr = g.mem.uva(g.mem.base() + g.mem.totalBytes() - 16);
  EXPECT_FALSE(VirtQueue::create(g.mem, cfg, nullptr).ok());
  cfg = g.config();
  cfg.addrs.availUserAddr = 2;
  EXPECT_FALSE(VirtQueue::create(g.mem, cfg, nullptr).ok());
  EXPECT_TRUE(VirtQueue::create(g.mem, g.config(), nullptr).ok());
}

TEST(VirtQueue, PopsASimpleChainAndPushesItBack) {
  GuestDriver g(8);
  auto q = makeQueue(g, g.config());
  uint64_t hdr = g.alloc(16), data = g.alloc(4096), status = g.alloc(1);
  uint16_t head = g.post({{hdr, 16, false}, {data, 4096, true}, {status, 1, true}});
  Chain c = popOne(*q);
  EXPECT_EQ(c.head, head);
  ASSERT_EQ(c.segments.size(), 3u);
  EXPECT_EQ(c.segments[0].data, g.mem.at(hdr));
  EXPECT_EQ(c.segments[0].len, 16u);
  EXPECT_FALSE(c.segments[0].deviceWritable);
  EXPECT_EQ(c.segments[1].data, g.mem.at(data));
  EXPECT_EQ(c.segments[1].gpa, data);
  EXPECT_TRUE(c.segments[1].deviceWritable);
  EXPECT_EQ(c.segments[2].len, 1u);
  auto none = q->pop();
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  EXPECT_EQ(q->lastAvailIdx(), 1);

  q->push(c, 4097);
  EXPECT_EQ(g.usedIdx(), 1);
  EXPECT_EQ(g.used(0).id, head);
  EXPECT_EQ(g.used(0).len, 4097u);
}

TEST(VirtQueue, IndicesWrapAround16Bits) {
  GuestDriver g(4);
  g.setAvailIdx(65534);
  auto cfg = g.config();
  cfg.lastAvailIdx = 65534;
  g.put16(g.usedGpa + 2, 65534);
  auto q = makeQueue(g, cfg);
  uint64_t b = g.alloc(64);
  for (int i = 0; i < 4; i++) g.post({{b, 64, true}});
  for (int i = 0; i < 4; i++) q->push(popOne(*q), 64);
  EXPECT_EQ(q->lastAvailIdx(), 2);
  EXPECT_EQ(g.usedIdx(), 2);
  auto none = q->pop();
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
}

TEST(VirtQueue, FollowsAnIndirectTable) {
  GuestDriver g(8);
  auto q = makeQueue(g, g.config(false, true));
  uint64_t table = g.alloc(48, 16), a = g.alloc(16), b = g.alloc(512), c = g.alloc(1);
  g.setDesc(table, 0, a, 16, VRING_DESC_F_NEXT, 2);
  g.setDesc(table, 2, b, 512, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 1);
  g.setDesc(table, 1, c, 1, VRING_DESC_F_WRITE, 0);
  // The WRITE flag of the descriptor that points at the table is ignored.
  g.setDesc(3, table, 48, VRING_DESC_F_INDIRECT | VRING_DESC_F_WRITE, 0);
  g.publish(3);
  Chain ch = popOne(*q);
  EXPECT_EQ(ch.head, 3);
  ASSERT_EQ(ch.segments.size(), 3u);
  EXPECT_EQ(ch.segments[0].gpa, a);
  EXPECT_EQ(ch.segments[1].gpa, b);
  EXPECT_EQ(ch.segments[2].gpa, c);
  EXPECT_TRUE(ch.segments[2].deviceWritable);
}

TEST(VirtQueue, IndirectWithoutTheFeatureBreaksTheQueue) {
  GuestDriver g(8);
  auto q = makeQueue(g, g.config(false, false));
  uint64_t table = g.alloc(16, 16);
  g.setDesc(table, 0, g.alloc(16), 16, 0, 0);
  g.setDesc(0, table, 16, VRING_DESC_F_INDIRECT, 0);
  g.publish(0);
  expectBroken(*q, "INDIRECT");
}

struct BadIndirect {
  const char* name;
  uint32_t len;
  uint16_t flags;
  bool nested;
  bool outside;
};

TEST(VirtQueue, RejectsMalformedIndirectTables) {
  const BadIndirect cases[] = {
      {"len not a multiple of 16", 40, VRING_DESC_F_INDIRECT, false, false},
      {"zero length", 0, VRING_DESC_F_INDIRECT, false, false},
      {"with NEXT", 32, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, false, false},
      {"nested", 32, VRING_DESC_F_INDIRECT, true, false},
      {"outside memory", 32, VRING_DESC_F_INDIRECT, false, true},
  };
  for (const auto& bc : cases) {
    SCOPED_TRACE(bc.name);
    GuestDriver g(8);
    auto q = makeQueue(g, g.config(false, true));
    uint64_t table = g.alloc(64, 16), inner = g.alloc(32, 16);
    g.setDesc(inner, 0, g.alloc(16), 16, 0, 0);
    g.setDesc(table, 0, g.alloc(16), 16, VRING_DESC_F_NEXT, 1);
    g.setDesc(table, 1, bc.nested ? inner : g.alloc(16), 16, bc.nested ? VRING_DESC_F_INDIRECT : 0, 0);
    uint64_t addr = bc.outside ? g.mem.base() + g.mem.totalBytes() - 16 : table;
    g.setDesc(0, addr, bc.len, bc.flags, 1);
    g.setDesc(1, g.alloc(16), 16, 0, 0);
    g.publish(0);
    EXPECT_FALSE(q->pop().ok());
    EXPECT_FALSE(q->pop().ok());
  }
}

TEST(VirtQueue, ALoopInTheTableBreaksTheQueueForGood) {
  GuestDriver g(8);
  auto q = makeQueue(g, g.config());
  uint64_t b = g.alloc(16);
  g.setDesc(0, b, 16, VRING_DESC_F_NEXT, 1);
  g.setDesc(1, b, 16, VRING_DESC_F_NEXT, 2);
  g.setDesc(2, b, 16, VRING_DESC_F_NEXT, 0);
  g.publish(0);
  expectBroken(*q, "loop");
  // A well-formed chain afterwards does not revive it.
  g.post({{b, 16, false}});
  EXPECT_FALSE(q->pop().ok());
}

TEST(VirtQueue, ALoopInsideAnIndirectTableIsBoundedByItsEntries) {
  GuestDriver g(8);
  auto q = makeQueue(g, g.config(false, true));
  uint64_t table = g.alloc(32, 16), b = g.alloc(16);
  g.setDesc(table, 0, b, 16, VRING_DESC_F_NEXT, 1);
  g.setDesc(table, 1, b, 16, VRING_DESC_F_NEXT, 0);
  g.setDesc(0, table, 32, VRING_DESC_F_INDIRECT, 0);
  g.publish(0);
  expectBroken(*q, "loop");
}

TEST(VirtQueue, AChainAsLongAsTheQueueIsFineOneLongerIsNot) {
  GuestDriver g(4);
  auto q = makeQueue(g, g.config());
  uint64_t b = g.alloc(16);
  std::vector<Buf> four(4, Buf{b, 16, false});
  g.post(four);
  EXPECT_EQ(popOne(*q).segments.size(), 4u);
  // Every slot chained to the next, the last back to the first.
  for (uint16_t i = 0; i < 4; i++) g.setDesc(i, b, 16, VRING_DESC_F_NEXT, (i + 1) % 4);
  g.publish(2);
  expectBroken(*q, "longer");
}

TEST(VirtQueue, IndicesOutsideTheTableBreakTheQueue) {
  {
    GuestDriver g(8);
    auto q = makeQueue(g, g.config());
    g.publish(8);  // head index == size
    expectBroken(*q, "outside a table");
  }
  {
    GuestDriver g(8);
    auto q = makeQueue(g, g.config());
    g.setDesc(0, g.alloc(16), 16, VRING_DESC_F_NEXT, 200);
    g.publish(0);
    expectBroken(*q, "outside a table");
  }
}

TEST(VirtQueue, BuffersOutsideGuestMemoryOrWrappingBreakTheQueue) {
  const uint64_t end = GuestDriver::kBase + (4 << 20);
  const std::pair<uint64_t, uint32_t> bad[] = {
      {0, 16},                         // below the region
      {end - 8, 16},                   // straddles the end
      {end, 1},                        // just past it
      {~0ull - 7, 64},                 // wraps the address space
      {GuestDriver::kBase, 8u << 20},  // longer than the region
  };
  for (auto [addr, len] : bad) {
    SCOPED_TRACE(addr);
    GuestDriver g(8);
    auto q = makeQueue(g, g.config());
    g.post({{addr, len, true}});
    expectBroken(*q, "outside");
  }
}

TEST(VirtQueue, AvailIdxJumpingMoreThanTheQueueSizeBreaksIt) {
  GuestDriver g(8);
  auto q = makeQueue(g, g.config());
  g.setAvailIdx(9);
  expectBroken(*q, "ahead");
}

TEST(VirtQueue, ReadableAfterWritableBreaksTheQueue) {
  GuestDriver g(8);
  auto q = makeQueue(g, g.config());
  uint64_t b = g.alloc(16);
  g.post({{b, 16, true}, {b, 16, false}});
  expectBroken(*q, "after a device-writable");
}

TEST(VirtQueue, ChainsOverMaxChainBytesBreakTheQueue) {
  GuestDriver g(8);
  auto cfg = g.config();
  cfg.maxChainBytes = 8192;
  auto q = makeQueue(g, cfg);
  uint64_t b = g.alloc(8192);
  g.post({{b, 8192, false}});
  EXPECT_EQ(popOne(*q).segments.size(), 1u);
  g.post({{b, 4096, false}, {b, 4097, true}});
  expectBroken(*q, "more than 8192 bytes");
}

TEST(VirtQueue, NoInterruptFlagSuppressesNotifications) {
  GuestDriver g(8);
  auto q = makeQueue(g, g.config());
  uint64_t b = g.alloc(16);
  EXPECT_FALSE(q->shouldNotify());  // nothing pushed yet
  g.post({{b, 16, true}});
  q->push(popOne(*q), 16);
  EXPECT_TRUE(q->shouldNotify());
  EXPECT_FALSE(q->shouldNotify());  // nothing new since
  g.setAvailFlags(VRING_AVAIL_F_NO_INTERRUPT);
  g.post({{b, 16, true}});
  q->push(popOne(*q), 16);
  EXPECT_FALSE(q->shouldNotify());
}

TEST(VirtQueue, EventIdxNotifiesOnlyWhenUsedEventIsCrossed) {
  GuestDriver g(8);
  auto q = makeQueue(g, g.config(true));
  uint64_t b = g.alloc(16);
  auto serve = [&] {
    g.post({{b, 16, true}});
    q->push(popOne(*q), 16);
  };
  g.setAvailFlags(VRING_AVAIL_F_NO_INTERRUPT);  // ignored with EVENT_IDX
  g.setUsedEvent(0);
  serve();  // used 0 -> 1 crosses used_event 0
  EXPECT_TRUE(q->shouldNotify());
  serve();  // 1 -> 2: the guest asked about 0 only
  EXPECT_FALSE(q->shouldNotify());
  g.setUsedEvent(4);
  serve();
  serve();  // 2 -> 4: not yet past 4
  EXPECT_FALSE(q->shouldNotify());
  serve();
  serve();  // 4 -> 6 crosses 4, in one batch
  EXPECT_TRUE(q->shouldNotify());
}

TEST(VirtQueue, KickSuppressionWithoutEventIdxUsesTheUsedFlags) {
  GuestDriver g(8);
  auto q = makeQueue(g, g.config());
  EXPECT_EQ(g.usedFlags() & VRING_USED_F_NO_NOTIFY, 0);
  q->setKicksEnabled(false);
  EXPECT_EQ(g.usedFlags() & VRING_USED_F_NO_NOTIFY, VRING_USED_F_NO_NOTIFY);
  q->setKicksEnabled(true);
  EXPECT_EQ(g.usedFlags() & VRING_USED_F_NO_NOTIFY, 0);
}

TEST(VirtQueue, KickSuppressionWithEventIdxMovesAvailEvent) {
  GuestDriver g(8);
  auto q = makeQueue(g, g.config(true));
  uint64_t b = g.alloc(16);
  g.post({{b, 16, true}});
  popOne(*q);
  EXPECT_EQ(g.availEvent(), 1);  // kick me when you post past 1
  q->setKicksEnabled(false);
  g.post({{b, 16, true}});
  g.post({{b, 16, true}});
  popOne(*q);
  popOne(*q);
  EXPECT_EQ(g.availEvent(), 1);  // draining: the guest is not asked again
  EXPECT_EQ(g.usedFlags(), 0);   // flags are not the mechanism with EVENT_IDX
  q->setKicksEnabled(true);
  EXPECT_EQ(g.availEvent(), 3);
}

TEST(VirtQueue, DirtyLogCoversWrittenBytesUsedEntryAndIdx) {
  GuestDriver g(8);
  FakeDirtyLog log;
  auto q = makeQueue(g, g.config(), &log);
  uint64_t hdr = g.alloc(16), d1 = g.alloc(100), d2 = g.alloc(200), d3 = g.alloc(64);
  g.post({{hdr, 16, false}, {d1, 100, true}, {d2, 200, true}, {d3, 64, true}});
  Chain c = popOne(*q);
  EXPECT_TRUE(log.marks.empty());  // popping writes nothing without EVENT_IDX
  q->push(c, 150);
  EXPECT_TRUE(log.covers(d1, 100));
  EXPECT_TRUE(log.covers(d2, 50));
  EXPECT_FALSE(log.covers(d2 + 50, 1));
  EXPECT_FALSE(log.covers(d3, 1));
  EXPECT_FALSE(log.covers(hdr, 1));
  EXPECT_TRUE(log.covers(g.usedGpa + 4, 8));  // used entry 0
  EXPECT_TRUE(log.covers(g.usedGpa + 2, 2));  // used idx
  EXPECT_EQ(log.marks.size(), 4u);

  // Logging off: nothing more is recorded.
  q->setDirtyLog(nullptr);
  g.post({{d1, 100, true}});
  q->push(popOne(*q), 100);
  EXPECT_EQ(log.marks.size(), 4u);
}

TEST(VirtQueue, DirtyLogUsesTheLogAddressWhenVringFLogIsSet) {
  GuestDriver g(8);
  FakeDirtyLog log;
  auto cfg = g.config();
  cfg.addrs.flags = 1u << VHOST_VRING_F_LOG;
  cfg.addrs.logGuestAddr = 0xabc000;
  auto q = makeQueue(g, cfg, &log);
  uint64_t b = g.alloc(16);
  g.post({{b, 16, true}});
  g.post({{b, 16, true}});
  q->push(popOne(*q), 16);
  q->push(popOne(*q), 0);
  EXPECT_TRUE(log.covers(0xabc000 + 4 + 8, 8));  // used entry 1
  EXPECT_TRUE(log.covers(0xabc000 + 2, 2));
  EXPECT_FALSE(log.covers(g.usedGpa + 2, 2));
}

TEST(VirtQueue, DirtyLogCoversKickSuppressionWrites) {
  GuestDriver g(8);
  FakeDirtyLog log;
  auto q = makeQueue(g, g.config(true), &log);
  uint64_t b = g.alloc(16);
  g.post({{b, 16, true}});
  popOne(*q);
  EXPECT_TRUE(log.covers(g.usedGpa + 4 + 8 * 8, 2));  // avail_event
}

TEST(VirtQueue, ADescriptorRewrittenAfterPopChangesNothing) {
  GuestDriver g(8);
  auto q = makeQueue(g, g.config());
  uint64_t b = g.alloc(16);
  g.post({{b, 16, true}});
  Chain c = popOne(*q);
  g.setDesc(0, 0xdead0000, 1 << 30, 0, 0);
  EXPECT_EQ(c.segments[0].gpa, b);
  EXPECT_EQ(c.segments[0].len, 16u);
}

TEST(VirtQueue, AvailIdxMovingBackwardsBreaksTheQueue) {
  GuestDriver g(8);
  auto q = makeQueue(g, g.config());
  uint64_t b = g.alloc(16);
  g.post({{b, 16, true}});
  g.post({{b, 16, true}});
  popOne(*q);
  popOne(*q);
  g.setAvailIdx(1);  // 65535 entries "ahead"
  expectBroken(*q, "ahead");
}

TEST(VirtQueue, NextOutsideAnIndirectTableBreaksTheQueue) {
  GuestDriver g(8);
  auto q = makeQueue(g, g.config(false, true));
  uint64_t table = g.alloc(32, 16), b = g.alloc(16);
  g.setDesc(table, 0, b, 16, VRING_DESC_F_NEXT, 2);  // the table has 2 entries
  g.setDesc(0, table, 32, VRING_DESC_F_INDIRECT, 0);
  g.publish(0);
  expectBroken(*q, "outside a table of 2");
}

TEST(VirtQueue, AnIndirectTableMayFollowDirectDescriptors) {
  GuestDriver g(8);
  auto q = makeQueue(g, g.config(false, true));
  uint64_t hdr = g.alloc(16), table = g.alloc(32, 16), d = g.alloc(512), st = g.alloc(1);
  g.setDesc(table, 0, d, 512, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
  g.setDesc(table, 1, st, 1, VRING_DESC_F_WRITE, 0);
  g.setDesc(5, hdr, 16, VRING_DESC_F_NEXT, 6);
  g.setDesc(6, table, 32, VRING_DESC_F_INDIRECT, 0);
  g.publish(5);
  Chain c = popOne(*q);
  ASSERT_EQ(c.segments.size(), 3u);
  EXPECT_EQ(c.segments[0].gpa, hdr);
  EXPECT_EQ(c.segments[2].gpa, st);
}

TEST(VirtQueue, ZeroLengthBuffersAreKeptButStillChecked) {
  GuestDriver g(8);
  auto q = makeQueue(g, g.config());
  uint64_t b = g.alloc(16);
  g.post({{b, 0, false}, {b, 16, true}});
  EXPECT_EQ(popOne(*q).segments.size(), 2u);
  g.post({{0x10, 0, false}});  // not a mapped address, even for 0 bytes
  expectBroken(*q, "outside");
}

TEST(VirtQueue, CompletionsMayComeBackOutOfOrder) {
  GuestDriver g(8);
  auto q = makeQueue(g, g.config());
  uint64_t b = g.alloc(64);
  uint16_t h0 = g.post({{b, 16, true}});
  uint16_t h1 = g.post({{b, 32, true}, {b, 32, true}});
  Chain c0 = popOne(*q), c1 = popOne(*q);
  q->push(c1, 64);
  q->push(c0, 16);
  EXPECT_EQ(g.usedIdx(), 2);
  EXPECT_EQ(g.used(0).id, h1);
  EXPECT_EQ(g.used(0).len, 64u);
  EXPECT_EQ(g.used(1).id, h0);
}

TEST(VirtQueue, StartsFromTheUsedIdxInTheRingAndTheGivenLastAvailIdx) {
  GuestDriver g(8);
  g.put16(g.usedGpa + 2, 7);
  g.setAvailIdx(7);
  auto cfg = g.config();
  cfg.lastAvailIdx = 7;
  auto q = makeQueue(g, cfg);
  auto none = q->pop();
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  uint64_t b = g.alloc(16);
  uint16_t head = g.post({{b, 16, true}});
  q->push(popOne(*q), 1);
  EXPECT_EQ(g.usedIdx(), 8);
  EXPECT_EQ(g.used(7).id, head);
  EXPECT_EQ(q->lastAvailIdx(), 8);
}

TEST(VirtQueue, TheSmallestAndLargestQueuesWork) {
  for (uint16_t n : {uint16_t{1}, uint16_t{32768}}) {
    SCOPED_TRACE(n);
    GuestDriver g(n, 2 << 20);
    auto q = makeQueue(g, g.config(true, true));
    uint64_t b = g.alloc(16);
    for (int i = 0; i < 3; i++) {
      g.post({{b, 16, true}});
      q->push(popOne(*q), 16);
    }
    EXPECT_EQ(g.usedIdx(), 3);
  }
}

}  // namespace
}  // namespace offcore::virt
