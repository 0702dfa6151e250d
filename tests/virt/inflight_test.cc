// Inflight tracking: a queue that dies mid-flight and a new queue over the
// same region, as a back end killed with -9 and restarted sees them.
#include "virt/vhost/inflight.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

#include "guest_driver.h"
#include "virt/vhost/virtqueue.h"

namespace offcore::virt {
namespace {

using test::GuestDriver;

constexpr uint16_t kSize = 8;

struct Rig {
  GuestDriver g{kSize};
  std::vector<uint8_t> region = std::vector<uint8_t>(inflightQueueBytes(kSize), 0);
  uint64_t buf = g.alloc(64);

  // A queue as a (re)started back end builds it: QEMU resumes from the used
  // idx after a crash.
  std::unique_ptr<VirtQueue> open(uint16_t lastAvail) {
    auto cfg = g.config();
    cfg.lastAvailIdx = lastAvail;
    cfg.inflight = region.data();
    auto q = VirtQueue::create(g.mem, cfg, nullptr);
    EXPECT_TRUE(q.ok());
    return q.ok() ? std::move(*q) : nullptr;
  }
  uint16_t post() { return g.post({{buf, 64, true}}); }
  uint8_t inflightFlag(uint16_t head) const { return region[16 + 16 * head]; }
  uint16_t regionUsedIdx() const {
    uint16_t v;
    std::memcpy(&v, region.data() + 14, 2);
    return v;
  }
};

Chain popOne(VirtQueue& q) {
  auto r = q.pop();
  EXPECT_TRUE(r.ok() && r->has_value());
  return r.ok() && r->has_value() ? std::move(**r) : Chain{};
}

void expectEmpty(VirtQueue& q) {
  auto r = q.pop();
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->has_value());
}

TEST(Inflight, AFreshRegionIsInitialisedAndResubmitsNothing) {
  Rig r;
  auto q = r.open(0);
  EXPECT_EQ(q->resubmitted(), 0);
  uint16_t version, descNum;
  std::memcpy(&version, r.region.data() + 8, 2);
  std::memcpy(&descNum, r.region.data() + 10, 2);
  EXPECT_EQ(version, 1);
  EXPECT_EQ(descNum, kSize);
}

TEST(Inflight, ACrashedQueueLeavesExactlyTheUnfinishedHeadsWhichANewQueueResubmitsInOrder) {
  Rig r;
  auto q = r.open(0);
  uint16_t h[4];
  for (auto& x : h) x = r.post();
  Chain c[4];
  for (auto& x : c) x = popOne(*q);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(r.inflightFlag(h[i]), 1);
  q->push(c[0], 64);
  q->push(c[2], 64);
  EXPECT_EQ(r.inflightFlag(h[0]), 0);
  EXPECT_EQ(r.inflightFlag(h[2]), 0);
  EXPECT_EQ(r.regionUsedIdx(), 2);
  q.reset();  // killed with c[1] and c[3] in hand
  uint16_t later = r.post();

  auto q2 = r.open(r.g.usedIdx());
  EXPECT_EQ(q2->resubmitted(), 2);
  Chain a = popOne(*q2);
  Chain b = popOne(*q2);
  EXPECT_EQ(a.head, h[1]);
  EXPECT_EQ(b.head, h[3]);
  ASSERT_EQ(a.segments.size(), 1u);
  EXPECT_EQ(a.segments[0].gpa, r.buf);
  Chain n = popOne(*q2);  // then what the guest posted meanwhile, once
  EXPECT_EQ(n.head, later);
  expectEmpty(*q2);
  q2->push(b, 64);
  q2->push(a, 64);
  q2->push(n, 64);
  EXPECT_EQ(r.g.usedIdx(), 5);
  EXPECT_EQ(q2->lastAvailIdx(), 5);

  auto q3 = r.open(q2->lastAvailIdx());  // a clean restart: nothing left
  EXPECT_EQ(q3->resubmitted(), 0);
  expectEmpty(*q3);
}

TEST(Inflight, ACrashAfterPublishingTheUsedIdxDoesNotResubmitTheFinishedHead) {
  Rig r;
  auto q = r.open(0);
  uint16_t head = r.post();
  Chain c = popOne(*q);
  q->push(c, 64);
  q.reset();
  // Roll the region back to the moment between publishing used idx and
  // recording it: the head still looks in flight, used_idx is behind.
  r.region[16 + 16 * head] = 1;
  std::memset(r.region.data() + 14, 0, 2);

  auto q2 = r.open(r.g.usedIdx());
  EXPECT_EQ(q2->resubmitted(), 0);
  EXPECT_EQ(r.inflightFlag(head), 0);
  EXPECT_EQ(r.regionUsedIdx(), 1);
  expectEmpty(*q2);
  EXPECT_EQ(q2->lastAvailIdx(), 1);
}

TEST(Inflight, ARegionForAnotherQueueSizeStartsOver) {
  Rig r;
  auto q = r.open(0);
  r.post();
  popOne(*q);
  q.reset();
  uint16_t other = 16;
  std::memcpy(r.region.data() + 10, &other, 2);
  auto q2 = r.open(r.g.usedIdx());
  EXPECT_EQ(q2->resubmitted(), 0);
}

TEST(Inflight, AreaMemfdIsSharedWithItsMappedCopy) {
  auto a = InflightArea::create(2, kSize);
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_EQ((*a)->size(), 2 * inflightQueueBytes(kSize));
  EXPECT_EQ((*a)->queue(2), nullptr);
  (*a)->queue(1)[16] = 7;
  auto b = InflightArea::map(::fcntl((*a)->fd(), F_DUPFD_CLOEXEC, 0), (*a)->size(), 0, 2, kSize);
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_EQ((*b)->queue(1)[16], 7);
  EXPECT_EQ((*b)->fd(), -1);
  EXPECT_FALSE(InflightArea::map(::dup((*a)->fd()), 16, 0, 2, kSize).ok());
  EXPECT_FALSE(InflightArea::create(0, kSize).ok());
  // An area past the end of its file, or one its sender could shrink, would
  // SIGBUS the back end: both refused.
  EXPECT_FALSE(InflightArea::map(::dup((*a)->fd()), (*a)->size(), 4096, 2, kSize).ok());
  int unsealed = ::memfd_create("oc-inflight-unsealed", MFD_CLOEXEC);
  ASSERT_EQ(::ftruncate(unsealed, static_cast<off_t>((*a)->size())), 0);
  auto c = InflightArea::map(unsealed, (*a)->size(), 0, 2, kSize);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message.find("F_SEAL_SHRINK"), std::string::npos) << c.error().message;
}

}  // namespace
}  // namespace offcore::virt
