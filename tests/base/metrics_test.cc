#include "base/metrics.h"

#include <gtest/gtest.h>

namespace offcore {
namespace {

TEST(MetricsTest, RendersPrometheusTextFormat) {
  MetricsRegistry m;
  m.describe("offcore_service_restarts_total", "counter", "restarts of a service");
  m.add("offcore_service_restarts_total", {{"node", "a"}, {"service", "web"}}, 1);
  m.add("offcore_service_restarts_total", {{"node", "a"}, {"service", "web"}}, 2);
  m.set("offcore_agent_up", {}, 1);
  std::string text = m.renderText();
  EXPECT_EQ(text,
            "# TYPE offcore_agent_up gauge\n"
            "offcore_agent_up 1\n"
            "# HELP offcore_service_restarts_total restarts of a service\n"
            "# TYPE offcore_service_restarts_total counter\n"
            "offcore_service_restarts_total{node=\"a\",service=\"web\"} 3\n");
}

TEST(MetricsTest, EscapesLabelValues) {
  MetricsRegistry m;
  m.set("x", {{"path", "a\"b\\c\nd"}}, 0.5);
  EXPECT_NE(m.renderText().find("x{path=\"a\\\"b\\\\c\\nd\"} 0.5\n"), std::string::npos);
}

TEST(MetricsTest, GetReadsBack) {
  MetricsRegistry m;
  m.set("g", {{"d", "soc"}}, 2.5);
  EXPECT_DOUBLE_EQ(m.get("g", {{"d", "soc"}}), 2.5);
  EXPECT_DOUBLE_EQ(m.get("g", {{"d", "host"}}), 0);
}

}  // namespace
}  // namespace offcore
