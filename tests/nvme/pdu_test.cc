// PDUs built byte by byte from the NVMe/TCP specification's layouts, checked
// against our builders and parser.
#include "nvme/pdu.h"

#include <gtest/gtest.h>

#include "base/crc32c.h"

namespace offcore::nvme {
namespace {

TEST(Crc32cTest, KnownVectors) {
  const char* s = "123456789";
  EXPECT_EQ(offcore::crc32c(0, reinterpret_cast<const uint8_t*>(s), 9), 0xE3069283u);
  std::vector<uint8_t> zeros(32, 0);
  EXPECT_EQ(offcore::crc32c(0, zeros.data(), zeros.size()), 0x8A9136AAu);  // RFC 3720 B.4
  std::vector<uint8_t> ones(32, 0xFF);
  EXPECT_EQ(offcore::crc32c(0, ones.data(), ones.size()), 0x62A8AB43u);
}

TEST(PduTest, IcReqLayout) {
  auto p = buildIcReq(/*hpda=*/2, kHdgstEnable | kDdgstEnable, /*maxr2t=*/7);
  ASSERT_EQ(p.size(), 128u);
  EXPECT_EQ(p[0], 0x00);                   // PDU-type ICReq
  EXPECT_EQ(p[1], 0x00);                   // flags
  EXPECT_EQ(p[2], 128);                    // HLEN
  EXPECT_EQ(p[3], 0);                      // PDO
  EXPECT_EQ(getLe32(p.data() + 4), 128u);  // PLEN
  EXPECT_EQ(getLe16(p.data() + 8), 0u);    // PFV
  EXPECT_EQ(p[10], 2);                     // HPDA
  EXPECT_EQ(p[11], 0x03);                  // DGST
  EXPECT_EQ(getLe32(p.data() + 12), 7u);   // MAXR2T
  for (size_t i = 16; i < 128; ++i) ASSERT_EQ(p[i], 0) << i;
}

TEST(PduTest, CapsuleCmdWithDigestsAndInCapsuleData) {
  Sqe sqe;
  sqe.b[0] = kIoWrite;
  putLe16(sqe.b + 2, 0x1234);
  std::vector<uint8_t> data(512, 0xAB);
  auto p = buildCapsuleCmd(sqe, data.data(), data.size(), Digests{true, true}, 4);
  // CH(8) + SQE(64) = HLEN 72; HDGST 4 -> PDO 76; data 512; DDGST 4.
  EXPECT_EQ(p[0], 0x04);
  EXPECT_EQ(p[1], kFlagHdgst | kFlagDdgst);
  EXPECT_EQ(p[2], 72);
  EXPECT_EQ(p[3], 76);
  EXPECT_EQ(getLe32(p.data() + 4), 72u + 4 + 512 + 4);
  EXPECT_EQ(getLe32(p.data() + 72), offcore::crc32c(0, p.data(), 72));
  EXPECT_EQ(getLe32(p.data() + 76 + 512), offcore::crc32c(0, data.data(), 512));
  EXPECT_EQ(p[8], kIoWrite);
  EXPECT_EQ(getLe16(p.data() + 10), 0x1234);
}

TEST(PduTest, CapsuleCmdAlignmentPadsToCpda) {
  Sqe sqe;
  std::vector<uint8_t> data(8, 1);
  auto p = buildCapsuleCmd(sqe, data.data(), data.size(), Digests{false, false}, 128);  // CPDA 31
  EXPECT_EQ(p[3], 128);
  EXPECT_EQ(p.size(), 136u);
  for (size_t i = 72; i < 128; ++i) ASSERT_EQ(p[i], 0);
}

TEST(PduTest, CapsuleRespLayout) {
  Cqe cqe = Cqe::make(/*cid=*/9, kScLbaOutOfRange | kStatusDnr, /*dw0=*/0xAABBCCDD, /*sqhd=*/5, /*sqid=*/2);
  auto p = buildCapsuleResp(cqe, Digests{});
  ASSERT_EQ(p.size(), 24u);
  EXPECT_EQ(p[0], 0x05);
  EXPECT_EQ(p[2], 24);
  EXPECT_EQ(getLe32(p.data() + 8), 0xAABBCCDDu);  // DW0
  EXPECT_EQ(getLe16(p.data() + 16), 5u);          // SQHD
  EXPECT_EQ(getLe16(p.data() + 18), 2u);          // SQID
  EXPECT_EQ(getLe16(p.data() + 20), 9u);          // CID
  // Status field: bit 0 phase (0), SC in bits 8:1, SCT in 11:9, DNR bit 15.
  uint16_t sf = getLe16(p.data() + 22);
  EXPECT_EQ(sf & 1, 0);
  EXPECT_EQ((sf >> 1) & 0xFF, 0x80);
  EXPECT_EQ((sf >> 9) & 0x7, 0);
  EXPECT_EQ(sf >> 15, 1);
}

TEST(PduTest, C2HDataFlagsAndOffsets) {
  std::vector<uint8_t> data(4096, 7);
  auto p = buildData(kC2HData, 3, 0, 8192, data.data(), data.size(), true, true, Digests{false, true}, 4);
  EXPECT_EQ(p[0], 0x07);
  EXPECT_EQ(p[1], kFlagDdgst | kFlagLastPdu | kFlagSuccess);
  EXPECT_EQ(p[2], 24);
  EXPECT_EQ(p[3], 24);
  EXPECT_EQ(getLe16(p.data() + 8), 3u);      // CCCID
  EXPECT_EQ(getLe32(p.data() + 12), 8192u);  // DATAO
  EXPECT_EQ(getLe32(p.data() + 16), 4096u);  // DATAL
  EXPECT_EQ(getLe32(p.data() + 4), 24u + 4096 + 4);
}

TEST(PduTest, R2TAndTermReqLayouts) {
  auto r = buildR2T(11, 22, 4096, 65536, Digests{});
  EXPECT_EQ(r[0], 0x09);
  EXPECT_EQ(getLe16(r.data() + 8), 11u);
  EXPECT_EQ(getLe16(r.data() + 10), 22u);
  EXPECT_EQ(getLe32(r.data() + 12), 4096u);
  EXPECT_EQ(getLe32(r.data() + 16), 65536u);
  std::vector<uint8_t> bad(72, 0xEE);
  auto t = buildTermReq(kC2HTermReq, kFesInvalidHeaderField, 2, bad);
  EXPECT_EQ(t[0], 0x03);
  EXPECT_EQ(t[1], 0);
  EXPECT_EQ(t[2], 24);
  EXPECT_EQ(getLe16(t.data() + 8), 1u);   // FES
  EXPECT_EQ(getLe32(t.data() + 10), 2u);  // FEI
  EXPECT_EQ(getLe32(t.data() + 4), 24u + 72);
}

TEST(PduParserTest, ReassemblesAcrossArbitrarySplits) {
  Sqe sqe;
  sqe.b[0] = kIoRead;
  auto a = buildCapsuleCmd(sqe, nullptr, 0, Digests{true, false}, 4);
  std::vector<uint8_t> stream = a;
  stream.insert(stream.end(), a.begin(), a.end());
  PduParser parser(Role::kTarget);
  ParserLimits l;
  l.header_digest = true;
  parser.setLimits(l);
  int got = 0;
  for (uint8_t byte : stream) {
    parser.feed(&byte, 1);
    std::optional<FatalError> e;
    while (auto p = parser.next(e)) {
      EXPECT_EQ(p->type, kCapsuleCmd);
      ++got;
    }
    ASSERT_FALSE(e.has_value());
  }
  EXPECT_EQ(got, 2);
}

struct BadCase {
  const char* name;
  std::vector<uint8_t> bytes;
  uint16_t fes;
  uint32_t fei;
};

TEST(PduParserTest, MalformedHeadersAreFatalWithTheRightFesAndFei) {
  Sqe sqe;
  auto good = buildCapsuleCmd(sqe, nullptr, 0, Digests{}, 4);
  std::vector<BadCase> cases;
  auto wrong_type = good;
  wrong_type[0] = kCapsuleResp;  // a controller-to-host PDU sent to the target
  cases.push_back({"type", wrong_type, kFesInvalidHeaderField, 0});
  auto wrong_hlen = good;
  wrong_hlen[2] = 70;
  cases.push_back({"hlen", wrong_hlen, kFesInvalidHeaderField, 2});
  auto unexpected_digest = good;
  unexpected_digest[1] = kFlagHdgst;
  cases.push_back({"hdgst flag", unexpected_digest, kFesInvalidHeaderField, 1});
  auto short_plen = good;
  putLe32(short_plen.data() + 4, 40);
  cases.push_back({"plen", short_plen, kFesInvalidHeaderField, 4});
  std::vector<uint8_t> data(100000, 1);
  auto too_big = buildCapsuleCmd(sqe, data.data(), data.size(), Digests{}, 4);
  cases.push_back({"in-capsule limit", too_big, kFesDataLimitExceeded, 4});
  auto bad_pdo = buildCapsuleCmd(sqe, data.data(), 16, Digests{}, 4);
  bad_pdo[3] = 73;  // misaligned and inside the header
  cases.push_back({"pdo", bad_pdo, kFesInvalidHeaderField, 3});
  for (auto& c : cases) {
    PduParser parser(Role::kTarget);
    parser.feed(c.bytes.data(), c.bytes.size());
    std::optional<FatalError> e;
    EXPECT_FALSE(parser.next(e).has_value()) << c.name;
    ASSERT_TRUE(e.has_value()) << c.name;
    EXPECT_EQ(e->fes, c.fes) << c.name;
    EXPECT_EQ(e->fei, c.fei) << c.name;
  }
}

TEST(PduParserTest, HeaderDigestMismatchIsFatal) {
  Sqe sqe;
  auto p = buildCapsuleCmd(sqe, nullptr, 0, Digests{true, false}, 4);
  p[72] ^= 0xFF;
  PduParser parser(Role::kTarget);
  ParserLimits l;
  l.header_digest = true;
  parser.setLimits(l);
  parser.feed(p.data(), p.size());
  std::optional<FatalError> e;
  EXPECT_FALSE(parser.next(e).has_value());
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->fes, kFesHeaderDigestError);
}

TEST(PduParserTest, DataDigestMismatchIsReportedNotFatal) {
  std::vector<uint8_t> data(64, 5);
  auto p = buildData(kH2CData, 1, 1, 0, data.data(), data.size(), true, false, Digests{false, true}, 4);
  p[p.size() - 10] ^= 1;  // corrupt the data, not the header
  PduParser parser(Role::kTarget);
  ParserLimits l;
  l.data_digest = true;
  parser.setLimits(l);
  parser.feed(p.data(), p.size());
  std::optional<FatalError> e;
  auto pdu = parser.next(e);
  ASSERT_TRUE(pdu.has_value());
  EXPECT_FALSE(pdu->data_digest_ok);
}

// A sender that writes the data from its own buffer (the target's reads)
// puts buildDataHead, the data and its digest on the wire: byte for byte
// what buildData makes, for every digest setting and alignment.
TEST(PduBuild, DataHeadPlusDataPlusDigestIsBuildData) {
  std::vector<uint8_t> data(5000);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 7 + 3);
  for (bool hd : {false, true}) {
    for (bool dd : {false, true}) {
      for (uint32_t align : {4u, 8u, 64u}) {
        Digests d{hd, dd};
        auto whole = buildData(kC2HData, 9, 0, 4096, data.data(), data.size(), true, false, d, align);
        auto head = buildDataHead(kC2HData, 9, 0, 4096, data.size(), true, false, d, align);
        head.insert(head.end(), data.begin(), data.end());
        if (dd) {
          uint8_t le[4];
          putLe32(le, dataDigest(data.data(), data.size()));
          head.insert(head.end(), le, le + 4);
        }
        EXPECT_EQ(head, whole) << "header digest " << hd << ", data digest " << dd << ", alignment " << align;
        EXPECT_EQ(getLe32(whole.data() + 4), whole.size());  // PLEN covers it all
      }
    }
  }
}

}  // namespace
}  // namespace offcore::nvme
