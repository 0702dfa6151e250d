#include "bench/fio.h"

#include <gtest/gtest.h>

namespace offcore {
namespace {

TEST(FioTest, ReadsTheFirstJobsSide) {
  const char* text = R"({"jobs":[{"error":0,"read":{"iops":1234.5,"bw":2048,"total_ios":99,
    "clat_ns":{"max":2500000,"percentile":{"50.000000":150000,"99.000000":900000}}},"write":{"iops":7}}]})";
  auto r = parseFioJson(text, true);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_DOUBLE_EQ(r->iops, 1234.5);
  EXPECT_DOUBLE_EQ(r->bw_mib, 2.0);
  EXPECT_DOUBLE_EQ(r->p50_us, 150.0);
  EXPECT_DOUBLE_EQ(r->p99_us, 900.0);
  EXPECT_DOUBLE_EQ(r->max_us, 2500.0);
  EXPECT_EQ(r->error, 0);
  EXPECT_EQ(parseFioJson(R"({"jobs":[{"error":84,"write":{"iops":1}}]})", false)->error, 84);
  EXPECT_DOUBLE_EQ(parseFioJson(text, false)->iops, 7.0);
}

TEST(FioTest, NoJobIsAnError) {
  EXPECT_FALSE(parseFioJson("", true).ok());
  EXPECT_FALSE(parseFioJson("fio: no such file", true).ok());
  EXPECT_FALSE(parseFioJson(R"({"jobs":[]})", true).ok());
}

}  // namespace
}  // namespace offcore

namespace offcore {
namespace {

TEST(FioTest, OddShapesAreErrorsNotCrashes) {
  for (const char* text : {R"({"jobs":{"a":1}})", R"({"jobs":[1]})", R"({"jobs":[{"read":3}]})", R"([1,2])",
                           R"({"jobs":[{"write":{}}]})"}) {
    EXPECT_FALSE(parseFioJson(text, true).ok()) << text;
  }
  auto partial = parseFioJson(R"({"jobs":[{"read":{"iops":5,"clat_ns":[]}}]})", true);
  ASSERT_TRUE(partial.ok());
  EXPECT_DOUBLE_EQ(partial->iops, 5.0);
}

}  // namespace
}  // namespace offcore
