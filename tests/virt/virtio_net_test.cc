// virtio-net over a fake tap: transmit gathers, receive into one chain and
// merged over several, no buffers, header passthrough, malformed chains.
#include "virt/net/virtio_net.h"

#include <endian.h>
#include <gtest/gtest.h>
#include <linux/if_tun.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include <cstring>
#include <numeric>

#include "fake_tap.h"
#include "guest_driver.h"

namespace offcore::virt {
namespace {

using test::Buf;
using test::FakeDirtyLog;
using test::FakeTap;
using test::GuestDriver;
using Fill = VhostDevice::Fill;

constexpr uint64_t bit(unsigned n) { return 1ull << n; }
constexpr uint64_t kModern = bit(VIRTIO_F_VERSION_1) | bit(vnet::kFMrgRxbuf) | bit(vnet::kFGuestCsum) |
                             bit(vnet::kFGuestTso4) | bit(vnet::kFGuestTso6) | bit(vnet::kFCsum);
constexpr size_t kHdr = vnet::kHdrV1;

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 7 + (i >> 8));
  return v;
}

// A header with every offload field set, as a tap or a guest writes it.
std::vector<uint8_t> header() {
  // flags, gso_type, hdr_len, gso_size, csum_start, csum_offset, num_buffers
  std::vector<uint8_t> h(kHdr);
  h[0] = vnet::kHdrFNeedsCsum;
  h[1] = vnet::kGsoTcpv4;
  const uint16_t fields[] = {htole16(54), htole16(1448), htole16(34), htole16(16),
                             htole16(0x5a5a)};  // num_buffers: the device's to set on receive
  std::memcpy(h.data() + 2, fields, sizeof fields);
  return h;
}

std::vector<uint8_t> concat(std::vector<uint8_t> a, const std::vector<uint8_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

class VirtioNetTest : public ::testing::Test {
 protected:
  VirtioNetTest() : net_(makeVirtioNet(tap_)), rxg_(16), txg_(16) {}

  void SetUp() override {
    ASSERT_TRUE(net_->setFeatures(kModern).ok());
    rxq_ = makeQueue(rxg_, &log_);
    txq_ = makeQueue(txg_, nullptr);
  }

  static std::unique_ptr<VirtQueue> makeQueue(GuestDriver& g, DirtyLog* log) {
    auto q = VirtQueue::create(g.mem, g.config(), log);
    EXPECT_TRUE(q.ok());
    return q.ok() ? std::move(*q) : nullptr;
  }

  // Posts a tx chain holding `bytes` split at the given sizes; serves it.
  void transmit(const std::vector<uint8_t>& bytes, const std::vector<size_t>& split) {
    std::vector<Buf> bufs;
    size_t at = 0;
    for (size_t n : split) {
      uint64_t g = txg_.alloc(n, 16);
      std::memcpy(txg_.mem.at(g), bytes.data() + at, n);
      bufs.push_back(Buf{g, static_cast<uint32_t>(n), false});
      at += n;
    }
    txg_.post(bufs);
    auto c = txq_->pop();
    ASSERT_TRUE(c.ok() && c->has_value());
    EXPECT_EQ(net_->handle(1, **c), 0u);
    txq_->push(**c, 0);
  }

  // Posts one writable rx chain of `len` bytes; returns its gpa.
  uint64_t postRx(uint32_t len) {
    uint64_t g = rxg_.alloc(len, 16);
    std::memset(rxg_.mem.at(g), 0xee, len);
    rxg_.post({Buf{g, len, true}});
    return g;
  }

  // The bytes the device wrote into the used chain at `slot`, whose buffer is at gpa.
  std::vector<uint8_t> usedBytes(uint16_t slot, uint64_t gpa) {
    auto e = rxg_.used(slot);
    return std::vector<uint8_t>(rxg_.mem.at(gpa), rxg_.mem.at(gpa) + e.len);
  }

  FakeTap tap_;
  std::unique_ptr<VirtioNet> net_;
  GuestDriver rxg_, txg_;
  FakeDirtyLog log_;
  std::unique_ptr<VirtQueue> rxq_, txq_;
};

TEST_F(VirtioNetTest, OffersOffloadsAndTellsTheTapTheHeaderAndGuestOffloads) {
  uint64_t f = net_->deviceFeatures();
  for (unsigned b : {vnet::kFCsum, vnet::kFGuestCsum, vnet::kFHostTso4, vnet::kFHostTso6, vnet::kFGuestTso4,
                     vnet::kFGuestTso6, vnet::kFMrgRxbuf}) {
    EXPECT_TRUE(f & bit(b)) << b;
  }
  EXPECT_FALSE(f & bit(vnet::kFMq));  // one pair
  EXPECT_EQ(net_->maxQueues(), 2);
  EXPECT_EQ(tap_.headerSize, 12);
  EXPECT_EQ(tap_.offloads, unsigned{TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6});
  EXPECT_EQ(net_->sourceFd(0), tap_.queueFd(0));
  EXPECT_EQ(net_->sourceFd(1), -1);  // tx is request/response

  // No guest checksum: the tap must not hand us partial checksums or TSO.
  ASSERT_TRUE(net_->setFeatures(bit(vnet::kFGuestTso4)).ok());
  EXPECT_EQ(tap_.offloads, 0u);
  EXPECT_EQ(tap_.headerSize, 10);  // legacy, no MRG_RXBUF

  FakeTap two(2);
  auto mq = makeVirtioNet(two);
  EXPECT_TRUE(mq->deviceFeatures() & bit(vnet::kFMq));
  EXPECT_EQ(mq->maxQueues(), 4);
  EXPECT_EQ(mq->sourceFd(2), two.queueFd(1));
  EXPECT_EQ(mq->sourceFd(3), -1);
}

TEST_F(VirtioNetTest, TransmitsOneSegmentAndGathersManyWithTheHeaderPassedThrough) {
  auto frame = concat(header(), pattern(1500, 1));
  transmit(frame, {frame.size()});
  EXPECT_EQ(tap_.take(), frame);

  auto big = concat(header(), pattern(9000, 2));
  transmit(big, {5, 7, 4000, 1, big.size() - 4013});  // header split too
  EXPECT_EQ(tap_.take(), big);
  auto s = net_->stats();
  EXPECT_EQ(s.txFrames, 2u);
  EXPECT_EQ(s.txBytes, 10500u);
  EXPECT_EQ(s.txMalformed, 0u);
}

TEST_F(VirtioNetTest, MalformedTransmitChainsAreDroppedAndCounted) {
  transmit(pattern(8, 3), {8});  // shorter than the 12-byte header
  uint64_t g = txg_.alloc(64, 16);
  uint64_t w = txg_.alloc(64, 16);
  txg_.post({Buf{g, 64, false}, Buf{w, 64, true}});  // a writable segment in tx
  auto c = txq_->pop();
  ASSERT_TRUE(c.ok() && c->has_value());
  EXPECT_EQ(net_->handle(1, **c), 0u);
  EXPECT_TRUE(tap_.take().empty());
  EXPECT_EQ(net_->stats().txMalformed, 2u);
  EXPECT_EQ(net_->stats().txFrames, 0u);
}

TEST_F(VirtioNetTest, ReceivesIntoOneChainWithTheHeaderPassedThroughAndNumBuffersSet) {
  auto frame = concat(header(), pattern(1000, 4));
  ASSERT_TRUE(tap_.inject(frame));
  uint64_t g = postRx(2048);
  EXPECT_EQ(net_->fill(0, *rxq_), Fill::kIdle);  // delivered, then the tap is empty
  ASSERT_EQ(rxg_.usedIdx(), 1);
  auto got = usedBytes(0, g);
  auto want = frame;
  want[10] = 1;  // num_buffers
  want[11] = 0;
  EXPECT_EQ(got, want);
  EXPECT_TRUE(log_.covers(g, frame.size()));
  EXPECT_EQ(net_->stats().rxFrames, 1u);
  EXPECT_EQ(net_->stats().rxBytes, 1000u);
}

TEST_F(VirtioNetTest, ReceivesOneFrameMergedOverSeveralChainsPublishedTogether) {
  auto frame = concat(header(), pattern(3000, 5));
  ASSERT_TRUE(tap_.inject(frame));
  std::vector<uint64_t> gpas;
  for (int i = 0; i < 4; ++i) gpas.push_back(postRx(1024));
  EXPECT_EQ(net_->fill(0, *rxq_), Fill::kIdle);
  ASSERT_EQ(rxg_.usedIdx(), 3);  // 3012 bytes over 3 chains of 1024, the 4th untouched
  std::vector<uint8_t> got;
  for (uint16_t i = 0; i < 3; ++i) {
    auto part = usedBytes(i, gpas[i]);
    EXPECT_EQ(part.size(), i < 2 ? 1024u : 3012u - 2048u);
    EXPECT_TRUE(log_.covers(gpas[i], part.size())) << i;
    got.insert(got.end(), part.begin(), part.end());
  }
  EXPECT_EQ(got[10], 3);  // num_buffers
  EXPECT_EQ(got[11], 0);
  got[10] = frame[10];
  got[11] = frame[11];
  EXPECT_EQ(got, frame);
  EXPECT_EQ(rxg_.mem.at(gpas[3])[0], 0xee);
}

TEST_F(VirtioNetTest, WithoutBuffersTheFrameWaitsForAKickAndTheTapIsNotRead) {
  auto first = concat(header(), pattern(500, 6));
  auto second = concat(header(), pattern(600, 7));
  ASSERT_TRUE(tap_.inject(first));
  ASSERT_TRUE(tap_.inject(second));
  EXPECT_EQ(net_->fill(0, *rxq_), Fill::kNoBuffers);
  EXPECT_EQ(rxg_.usedFlags() & VRING_USED_F_NO_NOTIFY, 0);  // kicks asked for
  EXPECT_EQ(net_->fill(0, *rxq_), Fill::kNoBuffers);        // a spurious wake changes nothing
  // The guest posts one buffer (and kicks): the first frame goes in, the
  // second waits again.
  uint64_t g = postRx(2048);
  EXPECT_EQ(net_->fill(0, *rxq_), Fill::kNoBuffers);
  ASSERT_EQ(rxg_.usedIdx(), 1);
  auto got = usedBytes(0, g);
  ASSERT_EQ(got.size(), first.size());
  EXPECT_TRUE(std::equal(got.begin() + kHdr, got.end(), first.begin() + kHdr));
  uint64_t g2 = postRx(2048);
  EXPECT_EQ(net_->fill(0, *rxq_), Fill::kIdle);
  ASSERT_EQ(rxg_.usedIdx(), 2);
  got = usedBytes(1, g2);
  EXPECT_TRUE(std::equal(got.begin() + kHdr, got.end(), second.begin() + kHdr));
  EXPECT_EQ(net_->stats().rxDropped, 0u);
}

TEST_F(VirtioNetTest, AMergedFrameWithTooFewChainsGivesThemBackUntilMoreArrive) {
  auto frame = concat(header(), pattern(3000, 8));
  ASSERT_TRUE(tap_.inject(frame));
  uint64_t a = postRx(1024);
  EXPECT_EQ(net_->fill(0, *rxq_), Fill::kNoBuffers);
  EXPECT_EQ(rxg_.usedIdx(), 0);  // the chain went back to the ring
  uint64_t b = postRx(1024);
  uint64_t c = postRx(1024);
  EXPECT_EQ(net_->fill(0, *rxq_), Fill::kIdle);
  ASSERT_EQ(rxg_.usedIdx(), 3);
  EXPECT_EQ(rxg_.used(0).len, 1024u);
  EXPECT_EQ(usedBytes(2, c).size(), 3012u - 2048u);
  std::vector<uint8_t> got = usedBytes(0, a);
  auto mid = usedBytes(1, b);
  got.insert(got.end(), mid.begin(), mid.end());
  auto tail = usedBytes(2, c);
  got.insert(got.end(), tail.begin(), tail.end());
  EXPECT_TRUE(std::equal(got.begin() + kHdr, got.end(), frame.begin() + kHdr));
}

TEST_F(VirtioNetTest, WithEventIdxTheKickIsAskedForPastTheLastAvailIdxRead) {
  auto q = VirtQueue::create(rxg_.mem, rxg_.config(/*eventIdx=*/true), nullptr);
  ASSERT_TRUE(q.ok());
  ASSERT_TRUE(tap_.inject(concat(header(), pattern(3000, 9))));
  postRx(1024);
  postRx(1024);
  EXPECT_EQ(net_->fill(0, **q), Fill::kNoBuffers);
  EXPECT_EQ(rxg_.usedIdx(), 0);
  // Two chains were given back; the guest must kick when it adds a third.
  EXPECT_EQ(rxg_.availEvent(), 2);
}

TEST_F(VirtioNetTest, WithoutMergeableBuffersAFrameTooBigForAChainIsDropped) {
  ASSERT_TRUE(net_->setFeatures(bit(vnet::kFGuestCsum)).ok());  // legacy 10-byte header
  constexpr size_t kLegacy = vnet::kHdrLegacy;
  std::vector<uint8_t> big(kLegacy, 0), small(kLegacy, 0);
  auto p1 = pattern(500, 10), p2 = pattern(50, 11);
  big.insert(big.end(), p1.begin(), p1.end());
  small.insert(small.end(), p2.begin(), p2.end());
  ASSERT_TRUE(tap_.inject(big));
  ASSERT_TRUE(tap_.inject(small));
  uint64_t g = postRx(100);
  EXPECT_EQ(net_->fill(0, *rxq_), Fill::kIdle);
  EXPECT_EQ(net_->stats().rxDropped, 1u);
  ASSERT_EQ(rxg_.usedIdx(), 1);  // the chain took the small frame
  EXPECT_EQ(usedBytes(0, g), small);
}

TEST_F(VirtioNetTest, AReadableReceiveChainIsReturnedEmptyAndTheFrameDropped) {
  ASSERT_TRUE(tap_.inject(concat(header(), pattern(100, 12))));
  ASSERT_TRUE(tap_.inject(pattern(5, 13)));  // shorter than a header: dropped
  uint64_t r = rxg_.alloc(64, 16);
  uint64_t w = rxg_.alloc(2048, 16);
  rxg_.post({Buf{r, 64, false}, Buf{w, 2048, true}});
  postRx(2048);
  EXPECT_EQ(net_->fill(0, *rxq_), Fill::kIdle);
  ASSERT_EQ(rxg_.usedIdx(), 1);
  EXPECT_EQ(rxg_.used(0).len, 0u);
  auto s = net_->stats();
  EXPECT_EQ(s.rxMalformed, 1u);
  EXPECT_EQ(s.rxDropped, 2u);
  EXPECT_EQ(s.rxFrames, 0u);
}

TEST_F(VirtioNetTest, ABrokenRingKeepsTheFrameAndNeverTouchesMemoryOutside) {
  ASSERT_TRUE(tap_.inject(concat(header(), pattern(100, 14))));
  rxg_.setDesc(0, rxg_.mem.base() + rxg_.mem.totalBytes() - 8, 64, VRING_DESC_F_WRITE, 0);
  rxg_.publish(0);
  EXPECT_EQ(net_->fill(0, *rxq_), Fill::kBroken);
  EXPECT_EQ(rxg_.usedIdx(), 0);
}

TEST_F(VirtioNetTest, ABudgetOfFramesPerFillSoStopIsNeverHeldLong) {
  for (int i = 0; i < 70; ++i) ASSERT_TRUE(tap_.inject(concat(header(), pattern(64, static_cast<uint8_t>(i)))));
  GuestDriver g(128);
  auto q = VirtQueue::create(g.mem, g.config(), nullptr);
  ASSERT_TRUE(q.ok());
  for (int i = 0; i < 100; ++i) g.post({Buf{g.alloc(256, 16), 256, true}});
  EXPECT_EQ(net_->fill(0, **q), Fill::kMore);
  EXPECT_EQ(g.usedIdx(), 64);
  EXPECT_EQ(net_->fill(0, **q), Fill::kIdle);
  EXPECT_EQ(g.usedIdx(), 70);
}

}  // namespace
}  // namespace offcore::virt
