#include "dpu/rx_steering.h"

#include <gtest/gtest.h>

namespace offcore {
namespace {

TEST(RxSteering, MaskIsTheKernelsBitmapFormat) {
  EXPECT_EQ(rpsMask({}), "0");
  EXPECT_EQ(rpsMask({0}), "1");
  EXPECT_EQ(rpsMask({1}), "2");
  EXPECT_EQ(rpsMask({0, 2, 3}), "d");
  EXPECT_EQ(rpsMask({31}), "80000000");
  // Above 32 cpus the words are comma-separated, most significant first.
  EXPECT_EQ(rpsMask({0, 32}), "1,00000001");
  EXPECT_EQ(rpsMask({40, 65}), "2,00000100,00000000");
}

TEST(RxSteering, RefusesNamesThatWouldLeaveSysfsNet) {
  EXPECT_FALSE(steerRx("", "../../kernel", {0}).ok());
  EXPECT_FALSE(steerRx("", "", {0}).ok());
  EXPECT_FALSE(rxSteering("", "a/b").ok());
  EXPECT_FALSE(steerRxNapi("", "../x", {0}).ok());
  EXPECT_FALSE(steerRxNapi("", "eth0", {}).ok());
  EXPECT_FALSE(disableTso("", "a b").ok());
}

}  // namespace
}  // namespace offcore
