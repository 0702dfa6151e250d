#include "netctl/tap.h"

#include <gtest/gtest.h>

#include "dpu/vf.h"

namespace offcore {
namespace {

TEST(VmTap, NamesAndMacsComeFromTheVmNameAlone) {
  EXPECT_EQ(vmTapName("web-1"), vmTapName("web-1")) << "every node picks the same tap name";
  EXPECT_NE(vmTapName("web-1"), vmTapName("web-2"));
  EXPECT_LE(vmTapName(std::string(32, 'a')).size(), 15u) << "IFNAMSIZ";
  EXPECT_TRUE(validateIfname(vmTapName("x")).ok());
  EXPECT_EQ(vmMac("web-1"), vmMac("web-1")) << "a migrated VM keeps its MAC";
  EXPECT_NE(vmMac("web-1"), vmMac("web-2"));
  EXPECT_TRUE(validateMac(vmMac("web-1")).ok());
  EXPECT_EQ(vmMac("web-1").rfind("02:0d:", 0), 0u) << "locally administered, unicast";
}

TEST(VmTap, RefusesNamesTheKernelCannotTake) {
  EXPECT_FALSE(createPersistentTap("", 1).ok());
  EXPECT_FALSE(createPersistentTap(std::string(16, 'a'), 1).ok());
}

}  // namespace
}  // namespace offcore
