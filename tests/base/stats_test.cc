#include "base/stats.h"

#include <gtest/gtest.h>

namespace offcore {
namespace {

TEST(StatsTest, MedianOfOddAndEvenCounts) {
  EXPECT_DOUBLE_EQ(median({5, 1, 3}), 3);
  EXPECT_DOUBLE_EQ(median({4, 1, 3, 2}), 2.5);
  EXPECT_DOUBLE_EQ(median({}), 0);
}

TEST(StatsTest, NearestRankPercentile) {
  std::vector<double> v{1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  EXPECT_DOUBLE_EQ(percentile(v, 0.9), 9);
  EXPECT_DOUBLE_EQ(percentile(v, 0.99), 10);
  EXPECT_DOUBLE_EQ(percentile(v, 0.0), 1);
}

}  // namespace
}  // namespace offcore
