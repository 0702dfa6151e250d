#include "virt/vhost/protocol.h"

#include <gtest/gtest.h>
#include <sys/eventfd.h>

#include <cstring>

namespace offcore::virt {
namespace {

Header header(Request r, uint32_t size, uint32_t flags = kVersion) { return {static_cast<uint32_t>(r), flags, size}; }

std::vector<UniqueFd> eventfds(size_t n) {
  std::vector<UniqueFd> v;
  for (size_t i = 0; i < n; ++i) v.emplace_back(::eventfd(0, EFD_CLOEXEC));
  return v;
}

std::vector<uint8_t> memTable(uint32_t n) {
  std::vector<uint8_t> p(8 + n * 32, 0);
  std::memcpy(p.data(), &n, 4);
  for (uint32_t i = 0; i < n; ++i) {
    uint64_t gpa = i * 0x100000ull, size = 0x100000;
    std::memcpy(p.data() + 8 + i * 32, &gpa, 8);
    std::memcpy(p.data() + 8 + i * 32 + 8, &size, 8);
  }
  return p;
}

TEST(VhostProtocolTest, ParsesHeaders) {
  uint8_t h[12] = {5, 0, 0, 0, 0x9, 0, 0, 0, 40, 0, 0, 0};
  auto ok = parseHeader(h);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ok->request, 5u);
  EXPECT_EQ(ok->size, 40u);
  h[4] = 0x2;  // version 2
  EXPECT_FALSE(parseHeader(h).ok());
  h[4] = 0x5;  // a reply
  EXPECT_FALSE(parseHeader(h).ok());
  h[4] = 0x1;
  h[9] = 0x10;  // 4136 bytes
  EXPECT_FALSE(parseHeader(h).ok());
}

TEST(VhostProtocolTest, ChecksPayloadSizesPerRequest) {
  uint8_t eight[8] = {};
  EXPECT_TRUE(parseMessage(header(Request::kSetVringNum, 8), eight, {}).ok());
  auto bad = parseMessage(header(Request::kSetVringNum, 4), std::span<const uint8_t>(eight, 4), {});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("SET_VRING_NUM"), std::string::npos) << bad.error().message;
  EXPECT_FALSE(parseMessage(header(Request::kGetFeatures, 8), eight, {}).ok());
  EXPECT_FALSE(parseMessage(header(Request::kSetVringAddr, 8), eight, {}).ok());
  // The header and the bytes read must agree.
  EXPECT_FALSE(parseMessage(header(Request::kSetFeatures, 8), std::span<const uint8_t>(eight, 7), {}).ok());
}

TEST(VhostProtocolTest, ChecksFdCounts) {
  uint8_t kick[8] = {1, 0, 0, 0, 0, 0, 0, 0};
  auto m = parseMessage(header(Request::kSetVringKick, 8), kick, eventfds(1));
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_EQ(m->vringIndex, 1u);
  EXPECT_FALSE(parseMessage(header(Request::kSetVringKick, 8), kick, {}).ok());
  EXPECT_FALSE(parseMessage(header(Request::kSetVringKick, 8), kick, eventfds(2)).ok());
  uint8_t nofd[8] = {1, 1, 0, 0, 0, 0, 0, 0};  // index 1 | NOFD
  EXPECT_TRUE(parseMessage(header(Request::kSetVringCall, 8), nofd, {}).ok());
  EXPECT_FALSE(parseMessage(header(Request::kSetVringCall, 8), nofd, eventfds(1)).ok());
  EXPECT_FALSE(parseMessage(header(Request::kSetOwner, 0), {}, eventfds(1)).ok());
}

TEST(VhostProtocolTest, ParsesMemoryTables) {
  auto two = memTable(2);
  auto m = parseMessage(header(Request::kSetMemTable, static_cast<uint32_t>(two.size())), two, eventfds(2));
  ASSERT_TRUE(m.ok()) << m.error().message;
  ASSERT_EQ(m->regions.size(), 2u);
  EXPECT_EQ(m->regions[1].guestPhysAddr, 0x100000u);
  EXPECT_EQ(m->regions[1].fd, m->fds[1].get());
  EXPECT_FALSE(parseMessage(header(Request::kSetMemTable, static_cast<uint32_t>(two.size())), two, eventfds(1)).ok());
  auto nine = memTable(9);
  auto big = parseMessage(header(Request::kSetMemTable, static_cast<uint32_t>(nine.size())), nine, eventfds(8));
  ASSERT_FALSE(big.ok());
  EXPECT_NE(big.error().message.find("9 regions"), std::string::npos) << big.error().message;
  auto none = memTable(0);
  EXPECT_FALSE(parseMessage(header(Request::kSetMemTable, 8), none, {}).ok());
}

TEST(VhostProtocolTest, RefusesUnknownRequestsAndBadConfigs) {
  auto unknown = parseMessage(Header{99, kVersion, 0}, {}, {});
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.error().message.find("unsupported request 99"), std::string::npos);
  std::vector<uint8_t> cfg(12 + 8, 0);
  cfg[4] = 8;  // size 8
  auto c = parseMessage(header(Request::kGetConfig, 20), cfg, {});
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->config.data.size(), 8u);
  cfg[4] = 9;
  EXPECT_FALSE(parseMessage(header(Request::kGetConfig, 20), cfg, {}).ok());
}

TEST(VhostProtocolTest, EncodesReplies) {
  auto r = encodeStateReply(static_cast<uint32_t>(Request::kGetVringBase), 1, 7);
  ASSERT_EQ(r.size(), 20u);
  uint32_t w[5];
  std::memcpy(w, r.data(), 20);
  EXPECT_EQ(w[0], 11u);
  EXPECT_EQ(w[1], kVersion | kFlagReply);
  EXPECT_EQ(w[2], 8u);
  EXPECT_EQ(w[3], 1u);
  EXPECT_EQ(w[4], 7u);
}

}  // namespace
}  // namespace offcore::virt
