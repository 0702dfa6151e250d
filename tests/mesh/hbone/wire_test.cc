#include "mesh/hbone/wire.h"

#include <gtest/gtest.h>

namespace offcore::mesh::hbone {
namespace {

TEST(HboneWireTest, Authority) {
  auto v4 = parseAuthority("10.1.2.3:8080");
  ASSERT_TRUE(v4.ok());
  EXPECT_EQ(v4->ip, "10.1.2.3");
  EXPECT_EQ(v4->port, 8080);
  auto v6 = parseAuthority("[fd00::5]:80");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->ip, "fd00::5");
  for (const char* bad :
       {"web:80", "10.1.2.3", "10.1.2.3:", "10.1.2.3:0", "10.1.2.3:70000", "10.1.2.3:8x", ":80", "fd00::5:80"}) {
    EXPECT_FALSE(parseAuthority(bad).ok()) << bad;
  }
  EXPECT_FALSE(parseAuthority(std::string("10.1.2.3\0junk:80", 16)).ok());
  EXPECT_EQ(formatAuthority("fd00::5", 80), "[fd00::5]:80");
}

TEST(HboneWireTest, Forwarded) {
  EXPECT_EQ(parseForwardedFor(forwardedFor("10.0.0.7")), "10.0.0.7");
  EXPECT_EQ(parseForwardedFor(forwardedFor("fd00::7")), "fd00::7");
  EXPECT_EQ(parseForwardedFor("proto=http;for=10.0.0.8, for=10.0.0.9"), "10.0.0.8");
  EXPECT_EQ(parseForwardedFor("for=unknown"), "");
  EXPECT_EQ(parseForwardedFor("xfor=10.0.0.8"), "");
  EXPECT_EQ(parseForwardedFor(""), "");
}

}  // namespace
}  // namespace offcore::mesh::hbone
