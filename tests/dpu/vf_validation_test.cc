#include <gtest/gtest.h>

#include "dpu/netns.h"
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
  for (const char* bad : {"", "a/b", "sixteen-chars-xx", "a b", "-h", "..", ".x", "a:b", "eth0\n"}) {
    EXPECT_FALSE(validateIfname(bad).ok()) << bad;
  }
}

TEST(VfValidationTest, NetnsNames) {
  EXPECT_TRUE(validateNetnsName("pod1").ok());
  EXPECT_TRUE(validateNetnsName("p1-12345").ok());
  for (const char* bad : {"", "-h", "../x", "a/b", "oc-fabric", "oc-a-soc", "ocf-stor1", "a b"}) {
    EXPECT_FALSE(validateNetnsName(bad).ok()) << bad;
  }
}

// The agent refuses, as a pod's namespace, anything that is not a network
// namespace and the namespaces that are not pods'.
TEST(VfValidationTest, PodNetnsPaths) {
  for (const char* bad : {"/tmp", "/proc/self/ns/mnt", "/proc/1/ns/net", "/proc/self/ns/net", "/nonexistent"}) {
    auto s = checkPodNetnsPath(bad);
    EXPECT_FALSE(s.ok()) << bad;
  }
  EXPECT_NE(checkPodNetnsPath("/tmp").error().message.find("not a namespace"), std::string::npos);
  EXPECT_NE(checkPodNetnsPath("/proc/self/ns/mnt").error().message.find("not a network namespace"), std::string::npos);
}

TEST(VfValidationTest, JsonListing) {
  Vf v{0, "pf0vf0", "pod1", "eth0", "10.1.0.5/24", "02:0c:00:00:00:01"};
  EXPECT_EQ(
      vfsToJson({v}),
      R"([{"ifname":"eth0","index":0,"ip":"10.1.0.5/24","mac":"02:0c:00:00:00:01","netns":"pod1","representor":"pf0vf0"}])");
}

}  // namespace
}  // namespace offcore
