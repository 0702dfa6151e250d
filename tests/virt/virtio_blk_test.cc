// virtio-blk requests, well-formed and not, against an in-memory device.
#include "virt/blk/virtio_blk.h"

#include <endian.h>
#include <gtest/gtest.h>
#include <linux/virtio_blk.h>

#include <cstring>
#include <deque>

#include "../nvme/memory_device.h"
#include "guest_driver.h"

namespace offcore::virt {
namespace {

constexpr uint64_t kDevBytes = 1 << 20;  // 2048 sectors, 256 blocks of 4 KiB

// A chain over host buffers, built segment by segment.
struct Request {
  std::deque<std::vector<uint8_t>> bufs;
  Chain chain;

  uint8_t* add(size_t n, bool writable) {
    bufs.emplace_back(n, 0xee);
    chain.segments.push_back(Segment{bufs.back().data(), static_cast<uint32_t>(n), writable, 0});
    return bufs.back().data();
  }
  // The 16-byte header, split after `split` bytes when 0 < split < 16.
  void header(uint32_t type, uint64_t sector, size_t split = 0) {
    virtio_blk_outhdr h{htole32(type), 0, htole64(sector)};
    const auto* p = reinterpret_cast<const uint8_t*>(&h);
    if (split > 0 && split < sizeof h) {
      std::memcpy(add(split, false), p, split);
      std::memcpy(add(sizeof h - split, false), p + split, sizeof h - split);
    } else {
      std::memcpy(add(sizeof h, false), p, sizeof h);
    }
  }
  void zeroSegment(uint64_t sector, uint32_t sectors, uint32_t flags) {
    virtio_blk_discard_write_zeroes s{htole64(sector), htole32(sectors), htole32(flags)};
    std::memcpy(add(sizeof s, false), &s, sizeof s);
  }
  uint8_t* status() { return add(1, true); }
};

class VirtioBlkTest : public ::testing::Test {
 protected:
  VirtioBlkTest() : dev_(kDevBytes), blk_(makeVirtioBlk(dev_, {})) {
    for (uint64_t i = 0; i < kDevBytes; i += 4096) {
      std::vector<uint8_t> block(4096, static_cast<uint8_t>(i / 4096 + 1));
      EXPECT_TRUE(dev_.write(i, block.data(), block.size()).ok());
    }
  }
  // Any byte range of the device (it only reads whole 4 KiB blocks).
  std::vector<uint8_t> deviceBytes(uint64_t off, size_t len) {
    uint64_t begin = off & ~4095ull, end = (off + len + 4095) & ~4095ull;
    std::vector<uint8_t> all(end - begin);
    EXPECT_TRUE(dev_.read(begin, all.data(), all.size()).ok());
    return std::vector<uint8_t>(all.begin() + (off - begin), all.begin() + (off - begin) + len);
  }
  uint32_t handle(Request& r) { return blk_->handle(0, r.chain); }

  offcore::test::MemoryDevice dev_;
  std::unique_ptr<VhostDevice> blk_;
};

TEST_F(VirtioBlkTest, AdvertisesFeaturesForItsOptions) {
  uint64_t f = blk_->deviceFeatures();
  for (int bit : {VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_BLK_SIZE, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_DISCARD,
                  VIRTIO_BLK_F_WRITE_ZEROES}) {
    EXPECT_TRUE(f & (1ull << bit)) << bit;
  }
  EXPECT_FALSE(f & (1ull << VIRTIO_BLK_F_MQ));
  EXPECT_FALSE(f & (1ull << VIRTIO_BLK_F_RO));
  EXPECT_EQ(blk_->maxQueues(), 1);

  VirtioBlkOptions o;
  o.numQueues = 4;
  o.readOnly = true;
  auto ro = makeVirtioBlk(dev_, o);
  f = ro->deviceFeatures();
  EXPECT_TRUE(f & (1ull << VIRTIO_BLK_F_MQ));
  EXPECT_TRUE(f & (1ull << VIRTIO_BLK_F_RO));
  EXPECT_FALSE(f & (1ull << VIRTIO_BLK_F_DISCARD));
  EXPECT_FALSE(f & (1ull << VIRTIO_BLK_F_WRITE_ZEROES));
  EXPECT_EQ(ro->maxQueues(), 4);
}

TEST_F(VirtioBlkTest, ConfigSpaceIsVirtioBlkConfigLittleEndian) {
  auto bytes = blk_->configSpace(3);
  virtio_blk_config c;
  ASSERT_EQ(bytes.size(), sizeof c);
  std::memcpy(&c, bytes.data(), sizeof c);
  EXPECT_EQ(le64toh(c.capacity), kDevBytes / 512);
  EXPECT_EQ(le32toh(c.seg_max), 126u);
  EXPECT_EQ(le32toh(c.blk_size), 4096u);
  EXPECT_EQ(le16toh(c.num_queues), 3);
  EXPECT_EQ(le32toh(c.max_discard_seg), 1u);
  EXPECT_EQ(le32toh(c.discard_sector_alignment), 8u);
  EXPECT_GT(le32toh(c.max_discard_sectors), 0u);
  EXPECT_EQ(le32toh(c.max_discard_sectors) % 8, 0u);
  EXPECT_EQ(le32toh(c.max_write_zeroes_seg), 1u);
  EXPECT_EQ(c.write_zeroes_may_unmap, 1);
}

TEST_F(VirtioBlkTest, ReadScattersIntoWritableSegments) {
  Request r;
  r.header(VIRTIO_BLK_T_IN, 8);  // block 1
  uint8_t* a = r.add(4096, true);
  uint8_t* b = r.add(4096, true);
  uint8_t* st = r.status();
  EXPECT_EQ(handle(r), 8193u);
  EXPECT_EQ(*st, VIRTIO_BLK_S_OK);
  EXPECT_EQ(a[0], 2);
  EXPECT_EQ(a[4095], 2);
  EXPECT_EQ(b[0], 3);
  EXPECT_EQ(b[4095], 3);
}

TEST_F(VirtioBlkTest, ReadWithDataAndStatusInOneSegmentAndASplitHeader) {
  Request r;
  r.header(VIRTIO_BLK_T_IN, 0, 5);
  uint8_t* both = r.add(4097, true);
  EXPECT_EQ(handle(r), 4097u);
  EXPECT_EQ(both[0], 1);
  EXPECT_EQ(both[4095], 1);
  EXPECT_EQ(both[4096], VIRTIO_BLK_S_OK);
}

TEST_F(VirtioBlkTest, ReadOverSegmentsThatAreNotWholeBlocksBounces) {
  Request r;
  r.header(VIRTIO_BLK_T_IN, 0);
  uint8_t* a = r.add(512, true);
  uint8_t* b = r.add(7680, true);
  uint8_t* st = r.status();
  EXPECT_EQ(handle(r), 8193u);
  EXPECT_EQ(*st, VIRTIO_BLK_S_OK);
  EXPECT_EQ(a[511], 1);
  EXPECT_EQ(b[3583], 1);
  EXPECT_EQ(b[3584], 2);
}

TEST_F(VirtioBlkTest, WriteGathersReadableSegments) {
  Request r;
  r.header(VIRTIO_BLK_T_OUT, 16);  // block 2
  std::memset(r.add(1024, false), 0xa1, 1024);
  std::memset(r.add(3072, false), 0xa2, 3072);  // not whole blocks: bounced
  std::memset(r.add(4096, false), 0xa3, 4096);
  uint8_t* st = r.status();
  EXPECT_EQ(handle(r), 1u);
  EXPECT_EQ(*st, VIRTIO_BLK_S_OK);
  auto d = deviceBytes(8192, 8192);
  EXPECT_EQ(d[0], 0xa1);
  EXPECT_EQ(d[1023], 0xa1);
  EXPECT_EQ(d[1024], 0xa2);
  EXPECT_EQ(d[4096], 0xa3);
  EXPECT_EQ(deviceBytes(16384, 1)[0], 5);  // block 4 untouched
}

TEST_F(VirtioBlkTest, WriteWithHeaderAndDataInOneSegment) {
  Request r;
  uint8_t* seg = r.add(16 + 4096, false);
  virtio_blk_outhdr h{htole32(VIRTIO_BLK_T_OUT), 0, htole64(8)};
  std::memcpy(seg, &h, sizeof h);
  std::memset(seg + 16, 0x5a, 4096);
  uint8_t* st = r.status();
  handle(r);
  EXPECT_EQ(*st, VIRTIO_BLK_S_OK);
  EXPECT_EQ(deviceBytes(4096, 4096), std::vector<uint8_t>(4096, 0x5a));
}

TEST_F(VirtioBlkTest, FlushReachesTheDevice) {
  Request r;
  r.header(VIRTIO_BLK_T_FLUSH, 0);
  uint8_t* st = r.status();
  EXPECT_EQ(handle(r), 1u);
  EXPECT_EQ(*st, VIRTIO_BLK_S_OK);
  EXPECT_EQ(dev_.flushes, 1);
}

TEST_F(VirtioBlkTest, GetIdPadsShortSerialsAndFillsAll20BytesOfLongOnes) {
  VirtioBlkOptions o;
  o.serial = "vol-7";
  auto blk = makeVirtioBlk(dev_, o);
  Request r;
  r.header(VIRTIO_BLK_T_GET_ID, 0);
  uint8_t* id = r.add(VIRTIO_BLK_ID_BYTES, true);
  uint8_t* st = r.status();
  EXPECT_EQ(blk->handle(0, r.chain), 21u);
  EXPECT_EQ(*st, VIRTIO_BLK_S_OK);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(id), 20), std::string("vol-7") + std::string(15, '\0'));

  o.serial = "0123456789abcdefghij";
  blk = makeVirtioBlk(dev_, o);
  Request r2;
  r2.header(VIRTIO_BLK_T_GET_ID, 0);
  uint8_t* id2 = r2.add(24, true);  // a larger buffer: only 20 bytes are written
  blk->handle(0, r2.chain);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(id2), 20), o.serial);
  EXPECT_EQ(id2[20], 0xee);
  EXPECT_EQ(id2[23], VIRTIO_BLK_S_OK);
}

TEST_F(VirtioBlkTest, DiscardAndWriteZeroesZeroTheRange) {
  Request d;
  d.header(VIRTIO_BLK_T_DISCARD, 0);
  d.zeroSegment(8, 16, 0);  // blocks 1 and 2
  uint8_t* st = d.status();
  handle(d);
  EXPECT_EQ(*st, VIRTIO_BLK_S_OK);
  EXPECT_EQ(dev_.discards, 1);
  EXPECT_EQ(deviceBytes(4096, 8192), std::vector<uint8_t>(8192, 0));
  EXPECT_EQ(deviceBytes(12288, 1)[0], 4);

  Request w;
  w.header(VIRTIO_BLK_T_WRITE_ZEROES, 0);
  w.zeroSegment(32, 8, 0);  // block 4, no unmap: writeZeroes
  st = w.status();
  handle(w);
  EXPECT_EQ(*st, VIRTIO_BLK_S_OK);
  EXPECT_EQ(dev_.discards, 1);
  EXPECT_EQ(deviceBytes(16384, 4096), std::vector<uint8_t>(4096, 0));

  Request u;
  u.header(VIRTIO_BLK_T_WRITE_ZEROES, 0);
  u.zeroSegment(40, 8, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
  st = u.status();
  handle(u);
  EXPECT_EQ(*st, VIRTIO_BLK_S_OK);
  EXPECT_EQ(dev_.discards, 2);
  EXPECT_EQ(deviceBytes(20480, 4096), std::vector<uint8_t>(4096, 0));
}

struct ZeroCase {
  const char* name;
  uint32_t type;
  uint64_t sector;
  uint32_t sectors;
  uint32_t flags;
  int segments;
  uint8_t want;
};

TEST_F(VirtioBlkTest, MalformedDiscardAndWriteZeroesAreRefused) {
  const ZeroCase cases[] = {
      {"discard with unmap", VIRTIO_BLK_T_DISCARD, 0, 8, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP, 1, VIRTIO_BLK_S_UNSUPP},
      {"reserved flags", VIRTIO_BLK_T_WRITE_ZEROES, 0, 8, 2, 1, VIRTIO_BLK_S_UNSUPP},
      {"two segments", VIRTIO_BLK_T_DISCARD, 0, 8, 0, 2, VIRTIO_BLK_S_IOERR},
      {"no segment", VIRTIO_BLK_T_DISCARD, 0, 8, 0, 0, VIRTIO_BLK_S_IOERR},
      {"past the end", VIRTIO_BLK_T_DISCARD, 2040, 16, 0, 1, VIRTIO_BLK_S_IOERR},
      {"sector overflow", VIRTIO_BLK_T_WRITE_ZEROES, ~0ull, 8, 0, 1, VIRTIO_BLK_S_IOERR},
      {"misaligned", VIRTIO_BLK_T_DISCARD, 1, 8, 0, 1, VIRTIO_BLK_S_IOERR},
      {"too many sectors", VIRTIO_BLK_T_DISCARD, 0, ~0u, 0, 1, VIRTIO_BLK_S_IOERR},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    Request r;
    r.header(c.type, 0);
    for (int i = 0; i < c.segments; i++) r.zeroSegment(c.sector, c.sectors, c.flags);
    uint8_t* st = r.status();
    handle(r);
    EXPECT_EQ(*st, c.want);
  }
  EXPECT_EQ(deviceBytes(0, 1)[0], 1);  // nothing was zeroed
  EXPECT_EQ(dev_.discards, 0);
}

TEST_F(VirtioBlkTest, UnknownTypesAreUnsupported) {
  for (uint32_t type : {uint32_t{VIRTIO_BLK_T_SCSI_CMD}, uint32_t{VIRTIO_BLK_T_SECURE_ERASE}, 99u, 0x80000000u}) {
    Request r;
    r.header(type, 0);
    uint8_t* st = r.status();
    EXPECT_EQ(handle(r), 1u);
    EXPECT_EQ(*st, VIRTIO_BLK_S_UNSUPP) << type;
  }
}

TEST_F(VirtioBlkTest, AChainWithoutAStatusByteGetsNoAnswer) {
  Request r;
  r.header(VIRTIO_BLK_T_OUT, 0);
  r.add(4096, false);
  EXPECT_EQ(handle(r), 0u);
  EXPECT_EQ(deviceBytes(0, 1)[0], 1);
  Request empty;
  EXPECT_EQ(handle(empty), 0u);
}

struct IoCase {
  const char* name;
  uint32_t type;
  uint64_t sector;
  uint32_t len;
  size_t headerBytes;
};

TEST_F(VirtioBlkTest, MalformedReadsAndWritesGetIoErr) {
  const IoCase cases[] = {
      {"header too short", VIRTIO_BLK_T_IN, 0, 4096, 12},
      {"no header", VIRTIO_BLK_T_IN, 0, 4096, 0},
      {"sector past the end", VIRTIO_BLK_T_IN, 2048, 4096, 16},
      {"straddles the end", VIRTIO_BLK_T_OUT, 2040, 8192, 16},
      {"sector overflows bytes", VIRTIO_BLK_T_OUT, ~0ull / 256, 4096, 16},
      {"not whole sectors", VIRTIO_BLK_T_OUT, 0, 4000, 16},
      {"not whole blocks", VIRTIO_BLK_T_IN, 0, 512, 16},
      {"misaligned to the block", VIRTIO_BLK_T_OUT, 1, 4096, 16},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    Request r;
    if (c.headerBytes == 16) {
      r.header(c.type, c.sector);
    } else if (c.headerBytes > 0) {
      r.add(c.headerBytes, false);
    }
    r.add(c.len, c.type == VIRTIO_BLK_T_IN);
    uint8_t* st = r.status();
    handle(r);
    EXPECT_EQ(*st, VIRTIO_BLK_S_IOERR);
  }
  EXPECT_EQ(deviceBytes(0, 1)[0], 1);
  EXPECT_EQ(deviceBytes(kDevBytes - 4096, 1)[0], 0);  // the last block (256 as uint8_t), not 0xee
}

TEST_F(VirtioBlkTest, WritesToAReadOnlyDeviceFail) {
  VirtioBlkOptions o;
  o.readOnly = true;
  auto blk = makeVirtioBlk(dev_, o);
  Request r;
  r.header(VIRTIO_BLK_T_OUT, 0);
  r.add(4096, false);
  uint8_t* st = r.status();
  blk->handle(0, r.chain);
  EXPECT_EQ(*st, VIRTIO_BLK_S_IOERR);
  Request d;
  d.header(VIRTIO_BLK_T_DISCARD, 0);
  d.zeroSegment(0, 8, 0);
  st = d.status();
  blk->handle(0, d.chain);
  EXPECT_EQ(*st, VIRTIO_BLK_S_UNSUPP);
  EXPECT_EQ(deviceBytes(0, 1)[0], 1);
}

TEST_F(VirtioBlkTest, DeviceErrorsBecomeIoErr) {
  offcore::test::MemoryDevice ro(kDevBytes, /*read_only=*/true);
  auto blk = makeVirtioBlk(ro, {});  // the device refuses, the options do not
  Request r;
  r.header(VIRTIO_BLK_T_OUT, 0);
  r.add(4096, false);
  uint8_t* st = r.status();
  blk->handle(0, r.chain);
  EXPECT_EQ(*st, VIRTIO_BLK_S_IOERR);
}

TEST_F(VirtioBlkTest, GetIdIntoAShortBufferWritesWhatFits) {
  Request r;
  r.header(VIRTIO_BLK_T_GET_ID, 0);
  uint8_t* id = r.add(4, true);
  uint8_t* st = r.status();
  EXPECT_EQ(handle(r), 5u);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(id), 4), "offc");
  EXPECT_EQ(*st, VIRTIO_BLK_S_OK);
}

TEST_F(VirtioBlkTest, AnEmptyReadSucceedsAndTouchesNothing) {
  Request r;
  r.header(VIRTIO_BLK_T_IN, 8);
  uint8_t* st = r.status();
  EXPECT_EQ(handle(r), 1u);
  EXPECT_EQ(*st, VIRTIO_BLK_S_OK);
}

TEST_F(VirtioBlkTest, WritableBytesBeforeTheStatusOfAWriteAreIgnored) {
  Request r;
  r.header(VIRTIO_BLK_T_OUT, 8);
  std::memset(r.add(4096, false), 0x77, 4096);
  uint8_t* spare = r.add(511, true);
  uint8_t* st = r.status();
  EXPECT_EQ(handle(r), 512u);  // every writable byte, as QEMU reports it
  EXPECT_EQ(*st, VIRTIO_BLK_S_OK);
  EXPECT_EQ(spare[0], 0xee);
  EXPECT_EQ(deviceBytes(4096, 4096), std::vector<uint8_t>(4096, 0x77));
}

// Through a real split ring: what the guest sees in the used ring.
TEST_F(VirtioBlkTest, ServesRequestsPoppedFromAVirtQueue) {
  test::GuestDriver g(16);
  auto q = VirtQueue::create(g.mem, g.config(), nullptr);
  ASSERT_TRUE(q.ok());
  uint64_t hdr = g.alloc(16), data = g.alloc(8192), status = g.alloc(1);
  virtio_blk_outhdr h{htole32(VIRTIO_BLK_T_IN), 0, htole64(24)};
  std::memcpy(g.mem.at(hdr), &h, sizeof h);
  uint16_t head = g.post({{hdr, 16, false}, {data, 8192, true}, {status, 1, true}});
  auto c = (*q)->pop();
  ASSERT_TRUE(c.ok() && c->has_value());
  uint32_t written = blk_->handle(0, **c);
  (*q)->push(**c, written);
  EXPECT_EQ(g.used(0).id, head);
  EXPECT_EQ(g.used(0).len, 8193u);
  EXPECT_EQ(*g.mem.at(status), VIRTIO_BLK_S_OK);
  EXPECT_EQ(*g.mem.at(data), 4);
  EXPECT_EQ(*g.mem.at(data + 4096), 5);
}

}  // namespace
}  // namespace offcore::virt
