#include "base/cpu_times.h"

#include <gtest/gtest.h>

namespace offcore {
namespace {

constexpr const char* kStat =
    "cpu  300 10 200 1000 5 0 40 0 0 0\n"
    "cpu0 100 0 100 600 5 0 10 0 0 0\n"
    "cpu1 200 10 100 400 0 0 30 2 0 0\n"
    "intr 12345 0 0\n"
    "ctxt 999\n";

TEST(CpuTimes, ParsesPerCpuLinesInSeconds) {
  auto t = parseCpuTimes(kStat, 100);
  ASSERT_TRUE(t.ok()) << t.error().message;
  ASSERT_EQ(t->size(), 2u);
  EXPECT_DOUBLE_EQ(t->at(1).user, 2.0);
  EXPECT_DOUBLE_EQ(t->at(1).softirq, 0.3);
  EXPECT_DOUBLE_EQ(t->at(1).steal, 0.02);
  EXPECT_DOUBLE_EQ(t->at(0).idle, 6.0);
  EXPECT_DOUBLE_EQ(t->at(1).busy(), 2.0 + 0.1 + 1.0 + 0.3);
}

TEST(CpuTimes, SumsTheCpusOfADomain) {
  auto t = parseCpuTimes(kStat, 100);
  ASSERT_TRUE(t.ok());
  EXPECT_DOUBLE_EQ(sumCpuTimes(*t, {0, 1}).softirq, 0.4);
  EXPECT_DOUBLE_EQ(sumCpuTimes(*t, {1}).softirq, 0.3);
  EXPECT_DOUBLE_EQ(sumCpuTimes(*t, {7}).softirq, 0.0);  // not on this machine
}

TEST(CpuTimes, RefusesGarbage) {
  EXPECT_FALSE(parseCpuTimes("intr 1 2 3\n", 100).ok());
  EXPECT_FALSE(parseCpuTimes("cpu0 1 2 x\n", 100).ok());
  EXPECT_FALSE(parseCpuTimes(kStat, 0).ok());
}

TEST(CpuTimes, ReadsThisMachine) {
  auto t = readCpuTimes();
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_FALSE(t->empty());
}

}  // namespace
}  // namespace offcore
