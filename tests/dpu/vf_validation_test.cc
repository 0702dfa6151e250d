#include <gtest/gtest.h>

#include "dpu/vf.h"

namespace offcore {
namespace {

TEST(VfValidationTest, Cidr) {
  EXPECT_TRUE(validateCidr("10.1.0.5/24").ok());
  for (const char* bad : {"10.1.0.5", "10.1.0.300/24", "10.1.0.5/33", "10.1.0.5/", "x/24", "10.1.0.5/2a"}) {
    EXPECT_FALSE(validateCidr(bad).ok()) << bad;
  }
}

TEST(VfValidationTest, Mac) {
  EXPECT_TRUE(validateMac("02:00:00:00:00:01").ok());
  for (const char* bad : {"02:00:00:00:00", "02:00:00:00:00:01:02", "zz:00:00:00:00:01", "01:00:00:00:00:01"}) {
    EXPECT_FALSE(validateMac(bad).ok()) << bad;
  }
}

TEST(VfValidationTest, Ifname) {
  EXPECT_TRUE(validateIfname("eth0").ok());
  for (const char* bad : {"", "a/b", "sixteen-chars-xx", "a b"}) EXPECT_FALSE(validateIfname(bad).ok()) << bad;
}

TEST(VfValidationTest, JsonListing) {
  Vf v{0, "pf0vf0", "pod1", "eth0", "10.1.0.5/24", "02:0c:00:00:00:01"};
  EXPECT_EQ(vfsToJson({v}),
            R"([{"ifname":"eth0","index":0,"ip":"10.1.0.5/24","mac":"02:0c:00:00:00:01","netns":"pod1","representor":"pf0vf0"}])");
}

}  // namespace
}  // namespace offcore
