#include "base/cpu_list.h"

#include <gtest/gtest.h>

namespace offcore {
namespace {

TEST(CpuListTest, ParsesKernelFormat) {
  EXPECT_EQ(*parseCpuList("0-2,4"), (CpuSet{0, 1, 2, 4}));
  EXPECT_EQ(*parseCpuList("1"), (CpuSet{1}));
  EXPECT_EQ(*parseCpuList(" 3,1 \n"), (CpuSet{1, 3}));
}

TEST(CpuListTest, RejectsGarbageWithAClearMessage) {
  for (const char* bad : {"", "a", "1-", "-1", "3-1", "1,,2", "1.5", "99999"}) {
    auto r = parseCpuList(bad);
    EXPECT_FALSE(r.ok()) << bad;
  }
  EXPECT_NE(parseCpuList("3-1").error().message.find("backwards"), std::string::npos);
}

TEST(CpuListTest, FormatsRanges) {
  EXPECT_EQ(formatCpuList({0, 1, 2, 4, 6, 7}), "0-2,4,6-7");
  EXPECT_EQ(formatCpuList({}), "");
}

TEST(CpuListTest, OnlineCpusIncludesCpuZero) {
  auto online = onlineCpus();
  ASSERT_TRUE(online.ok());
  EXPECT_TRUE(online->count(0));
}

}  // namespace
}  // namespace offcore
