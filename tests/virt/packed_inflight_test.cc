// Inflight tracking over a packed ring: a queue that dies mid-flight and a
// new queue over the same region, as a back end killed with -9 and restarted
// under QEMU 7.2 sees them (QEMU then sends the packed vring base it had at
// the first start, not where the dead back end stopped).
#include "virt/vhost/packed_inflight.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>

#include "packed_guest_driver.h"
#include "virt/vhost/inflight.h"
#include "virt/vhost/virtqueue.h"

namespace offcore::virt {
namespace {

using test::PackedDriver;

constexpr uint16_t kSize = 8;
// Avail and used positions 0 in lap 1: what QEMU 7.2 sends on every start
// of a ring it never read a base back from.
constexpr uint32_t kFirstBase = 0x80008000u;

struct Rig {
  PackedDriver g{kSize};
  std::vector<uint8_t> region = std::vector<uint8_t>(packedInflightQueueBytes(kSize), 0);
  uint64_t buf = g.alloc(4096);

  std::unique_ptr<VirtQueue> open(uint32_t base = kFirstBase) {
    auto cfg = g.config();
    cfg.lastAvailIdx = base;
    cfg.inflight = region.data();
    auto q = VirtQueue::create(g.mem, cfg, nullptr);
    EXPECT_TRUE(q.ok()) << (q.ok() ? "" : q.error().message);
    return q.ok() ? std::move(*q) : nullptr;
  }
  // A chain of `descs` writable buffers with buffer id `id`.
  void post(uint16_t id, uint16_t descs) {
    std::vector<test::Buf> bufs;
    for (uint16_t k = 0; k < descs; ++k) bufs.push_back({buf + 64ull * id + 8ull * k, 8, true});
    g.post(bufs, id);
  }
  uint16_t u16(size_t at) const {
    uint16_t v;
    std::memcpy(&v, region.data() + at, 2);
    return v;
  }
  void set16(size_t at, uint16_t v) { std::memcpy(region.data() + at, &v, 2); }
  uint8_t& inflightFlag(uint16_t entry) { return region[32 + 32 * entry]; }
};

// Header offsets (packed_inflight.h).
constexpr size_t kVersion = 8, kDescNum = 10, kFreeHead = 12, kOldFreeHead = 14, kUsedIdx = 16, kOldUsedIdx = 18;

Chain popOne(VirtQueue& q) {
  auto r = q.pop();
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  EXPECT_TRUE(r.ok() && r->has_value());
  return r.ok() && r->has_value() ? std::move(**r) : Chain{};
}

void expectEmpty(VirtQueue& q) {
  auto r = q.pop();
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_FALSE(r->has_value());
}

TEST(PackedInflight, AFreshRegionIsSetUpFromTheBaseAndResubmitsNothing) {
  Rig r;
  auto q = r.open(0x00030003u);  // avail and used 3, lap 2
  EXPECT_EQ(q->resubmitted(), 0);
  EXPECT_EQ(r.u16(kVersion), 1);
  EXPECT_EQ(r.u16(kDescNum), kSize);
  EXPECT_EQ(r.u16(kFreeHead), 0);
  EXPECT_EQ(r.u16(kUsedIdx), 3);
  EXPECT_EQ(r.region[20], 0);  // used wrap counter
  EXPECT_EQ(q->lastAvailIdx(), 0x00030003u);
}

TEST(PackedInflight, ACrashedQueueLeavesTheUnfinishedChainsWhichANewQueueResubmitsInOrder) {
  Rig r;
  auto q = r.open();
  r.post(1, 2);
  r.post(2, 1);
  r.post(3, 2);
  r.post(4, 1);
  Chain c[4];
  for (auto& x : c) x = popOne(*q);
  for (auto& x : c) EXPECT_EQ(r.inflightFlag(x.inflightEntry), 1);
  q->push(c[1], 8);  // out of order: 2 and 4 finish, 1 and 3 stay in flight
  q->push(c[3], 8);
  EXPECT_EQ(r.inflightFlag(c[1].inflightEntry), 0);
  EXPECT_EQ(r.u16(kUsedIdx), 2);
  EXPECT_EQ(r.u16(kOldUsedIdx), 2);
  q.reset();  // killed with 1 and 3 in hand
  r.post(5, 1);

  // QEMU sends the stale first base; the region knows better.
  auto q2 = r.open(kFirstBase);
  EXPECT_EQ(q2->resubmitted(), 2);
  Chain a = popOne(*q2);
  Chain b = popOne(*q2);
  EXPECT_EQ(a.head, 1);
  EXPECT_EQ(b.head, 3);
  EXPECT_EQ(a.descs, 2);
  ASSERT_EQ(a.segments.size(), 2u);
  EXPECT_EQ(a.segments[1].gpa, r.buf + 64 + 8);
  Chain n = popOne(*q2);  // then what the guest posted meanwhile, once
  EXPECT_EQ(n.head, 5);
  expectEmpty(*q2);
  q2->push(b, 16);
  q2->push(a, 16);
  q2->push(n, 8);
  uint16_t order[] = {2, 4, 3, 1, 5}, slots[] = {1, 1, 2, 2, 1};
  for (int i = 0; i < 5; ++i) {
    auto u = r.g.takeUsed(slots[i]);
    ASSERT_TRUE(u.has_value()) << i;
    EXPECT_EQ(u->id, order[i]);
  }
  EXPECT_EQ(q2->lastAvailIdx(), 0x80078007u);

  auto q3 = r.open(kFirstBase);  // a clean restart: nothing left, same place
  EXPECT_EQ(q3->resubmitted(), 0);
  EXPECT_EQ(q3->lastAvailIdx(), 0x80078007u);
  expectEmpty(*q3);
}

TEST(PackedInflight, AKillAfterTheUsedDescriptorWasPublishedCountsThePushAsDone) {
  Rig r;
  auto q = r.open();
  r.post(7, 1);
  Chain c = popOne(*q);
  q->push(c, 8);
  q.reset();
  // Back to the moment after the used descriptor's flags were stored and
  // before the head was cleared and the push committed.
  r.inflightFlag(c.inflightEntry) = 1;
  r.set16(kOldFreeHead, 1);
  r.set16(kOldUsedIdx, 0);

  auto q2 = r.open();
  EXPECT_EQ(q2->resubmitted(), 0);
  EXPECT_EQ(r.inflightFlag(c.inflightEntry), 0);
  EXPECT_EQ(r.u16(kOldUsedIdx), 1);
  EXPECT_EQ(q2->lastAvailIdx(), 0x80018001u);
  expectEmpty(*q2);
}

TEST(PackedInflight, AKillBeforeTheUsedDescriptorWasPublishedUndoesThePush) {
  Rig r;
  auto q = r.open();
  r.post(7, 2);
  Chain c = popOne(*q);
  q.reset();
  // A push that released the entries and moved used_idx, then died before
  // the flags store: the ring still shows the chain as available.
  r.set16(32 + 32 * 1 + 2, r.u16(kFreeHead));  // last entry's next = free head
  r.set16(kFreeHead, c.inflightEntry);
  r.set16(kUsedIdx, 2);

  auto q2 = r.open();
  EXPECT_EQ(q2->resubmitted(), 1);
  EXPECT_EQ(r.u16(kUsedIdx), 0);
  EXPECT_EQ(r.u16(kFreeHead), 2);
  Chain again = popOne(*q2);
  EXPECT_EQ(again.head, 7);
  expectEmpty(*q2);
  q2->push(again, 16);
  auto u = r.g.takeUsed(2);
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->id, 7);
}

TEST(PackedInflight, AKillHalfWayThroughAPopLeavesTheChainInTheRing) {
  Rig r;
  auto q = r.open();
  r.post(9, 2);
  popOne(*q);
  q.reset();
  r.set16(kOldFreeHead, 0);  // the pop never committed

  auto q2 = r.open();
  EXPECT_EQ(q2->resubmitted(), 0);
  EXPECT_EQ(r.inflightFlag(0), 0);
  EXPECT_EQ(popOne(*q2).head, 9);  // read again from the ring
}

TEST(PackedInflight, UnpoppedChainsLeaveTheRegion) {
  Rig r;
  auto q = r.open();
  r.post(1, 1);
  r.post(2, 2);
  Chain a = popOne(*q);
  popOne(*q);
  q->unpop(1);
  q.reset();
  auto q2 = r.open();
  EXPECT_EQ(q2->resubmitted(), 1);
  EXPECT_EQ(popOne(*q2).head, 1);
  EXPECT_EQ(popOne(*q2).head, 2);
  expectEmpty(*q2);
  // A resubmitted chain given back is resubmitted again.
  q2.reset();
  auto q3 = r.open();
  ASSERT_EQ(q3->resubmitted(), 2);
  EXPECT_EQ(popOne(*q3).head, 1);
  q3->unpop(1);
  EXPECT_EQ(popOne(*q3).head, 1);
  EXPECT_EQ(popOne(*q3).head, 2);
}

TEST(PackedInflight, ADriverThatMakesTakenSlotsAvailableAgainBreaksTheQueue) {
  Rig r;
  auto q = r.open();
  for (uint16_t id = 0; id < kSize; ++id) r.post(id, 1);
  for (uint16_t id = 0; id < kSize; ++id) popOne(*q);
  r.post(8, 1);  // slot 0 again, in lap 2, while the device holds it
  auto p = q->pop();
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().message.find("more descriptors in flight"), std::string::npos) << p.error().message;
}

TEST(PackedInflight, AnInconsistentRegionStartsOverFromTheBase) {
  auto corrupt = [](Rig& r) {
    r.set16(32 + 32 * 0 + 6, kSize + 1);  // the head's num
  };
  auto loops = [](Rig& r) {
    r.set16(32 + 32 * 0 + 6, 3);  // three entries, but entry 1 links back to 0
    r.set16(32 + 32 * 1 + 2, 0);
  };
  auto outside = [](Rig& r) { r.set16(kUsedIdx, kSize); };
  for (auto tamper : {+corrupt, +loops, +outside}) {
    Rig r;
    auto q = r.open();
    r.post(1, 2);
    popOne(*q);
    q.reset();
    tamper(r);
    auto q2 = r.open(kFirstBase);
    EXPECT_EQ(q2->resubmitted(), 0);
    EXPECT_EQ(r.u16(kFreeHead), 0);
    EXPECT_EQ(r.inflightFlag(0), 0);
    EXPECT_EQ(q2->lastAvailIdx(), kFirstBase);
  }
}

TEST(PackedInflight, ARecordedChainIsCheckedLikeANewOne) {
  Rig r;
  auto q = r.open();
  r.post(1, 1);
  Chain c = popOne(*q);
  q.reset();
  // The front end points the recorded buffer outside guest memory.
  uint64_t bad = 1ull << 40;
  std::memcpy(r.region.data() + 32 + 32 * c.inflightEntry + 24, &bad, 8);
  auto q2 = r.open();
  ASSERT_EQ(q2->resubmitted(), 1);
  EXPECT_FALSE(q2->pop().ok());
}

TEST(PackedInflight, AreaIsSizedForThePackedLayout) {
  auto a = InflightArea::create(2, kSize, true);
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_TRUE((*a)->packed());
  EXPECT_EQ(packedInflightQueueBytes(kSize), 320u);  // 32 + 8 x 32, 64-aligned
  EXPECT_EQ((*a)->size(), 2 * packedInflightQueueBytes(kSize));
  EXPECT_EQ((*a)->queue(1), (*a)->queue(0) + packedInflightQueueBytes(kSize));
  auto split = InflightArea::create(2, kSize, false);
  ASSERT_TRUE(split.ok());
  EXPECT_FALSE(InflightArea::map(::dup((*split)->fd()), (*split)->size(), 0, 2, kSize, true).ok());
  auto b = InflightArea::map(::dup((*a)->fd()), (*a)->size(), 0, 2, kSize, true);
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_TRUE((*b)->packed());
}

}  // namespace
}  // namespace offcore::virt
