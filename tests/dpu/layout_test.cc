#include "dpu/layout.h"

#include <gtest/gtest.h>

namespace offcore {
namespace {

TEST(LayoutTest, AcceptsShortLowercaseNames) {
  for (const char* ok : {"a", "node1", "stor-1", "abcdefghij"}) EXPECT_TRUE(validateName("node", ok).ok()) << ok;
}

TEST(LayoutTest, RejectsNamesThatBreakInterfaceNames) {
  for (const char* bad : {"", "1abc", "Node", "a_b", "abcdefghijk", "a/b", "a b", "-a"}) {
    auto s = validateName("node", bad);
    EXPECT_FALSE(s.ok()) << bad;
  }
  EXPECT_NE(validateName("node", "abcdefghijk").error().message.find("longer than 10"), std::string::npos);
}

TEST(LayoutTest, DerivedInterfaceNamesFitIfnamsiz) {
  Config c;
  NodeLayout l = NodeLayout::forNode(c, "abcdefghij");
  for (const auto& ifname : {l.uplink_fabric_if, l.hostvf_host_if, l.uplink_soc_if, l.hostvf_soc_if}) {
    EXPECT_LE(ifname.size(), 15u) << ifname;
  }
  EXPECT_EQ(l.run_dir, "/run/offcore/abcdefghij");
  EXPECT_EQ(l.cg_soc, "offcore/abcdefghij/soc");
  EXPECT_EQ(l.soc_netns, "oc-abcdefghij-soc");
}

}  // namespace
}  // namespace offcore
