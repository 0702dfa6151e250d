#include "bench/report.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "base/files.h"

namespace offcore {
namespace {

BenchReport sample() {
  BenchReport r;
  r.suite = "unit";
  r.title = "Unit report";
  r.baseline_name = "a baseline";
  r.rows.push_back({"up", "ms", 50, 25, true, "p90 60"});
  r.rows.push_back({"rss", "MiB", 3, std::nullopt, true, ""});
  return r;
}

TEST(ReportTest, RatioIsOffcoreOverBaseline) {
  EXPECT_DOUBLE_EQ(*ratio(sample().rows[0]), 2.0);
  EXPECT_FALSE(ratio(sample().rows[1]).has_value());
  BenchRow zero{"z", "ms", 1, 0.0, true, ""};
  EXPECT_FALSE(ratio(zero).has_value());
}

TEST(ReportTest, MarkdownHasSideBySideColumns) {
  std::string md = sample().toMarkdown("unit.png");
  EXPECT_NE(md.find("| up | ms | 50.00 | 25.00 | 2.00× | p90 60 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| rss | MiB | 3.00 | — | — |  |"), std::string::npos) << md;
  EXPECT_NE(md.find("![unit](unit.png)"), std::string::npos);
}

TEST(ReportTest, WritesFilesIntoTheDirectory) {
  std::string dir = "/tmp/offcore-report-test-" + std::to_string(::getpid());
  auto path = writeReport(sample(), dir);
  ASSERT_TRUE(path.ok()) << path.error().message;
  EXPECT_TRUE(pathExists(dir + "/unit.md"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace offcore
