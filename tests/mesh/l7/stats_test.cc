// The per-request record: the access-log line is valid JSON whatever bytes
// the request carried, and the series a request bumps are the ones a scrape
// renders (the cached pointers land on the registry's samples).
#include "mesh/l7/stats.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace offcore::mesh::l7::testing {
namespace {

RequestRecord record(int status, double ms) {
  RequestRecord r;
  r.start = std::chrono::system_clock::time_point(std::chrono::milliseconds(1764000000123));
  r.duration_ms = ms;
  r.source_workload = "frontend";
  r.destination_workload = "web";
  r.method = "GET";
  r.path = "/a\"b\\c\n\x01\x7f/caf\xc3\xa9/\xff\xfe";
  r.authority = "web";
  r.status = status;
  r.request_bytes = 3;
  r.response_bytes = 12;
  r.upstream_host = "10.0.0.1:80";
  r.route = "web/default";
  r.cluster = "web:80";
  return r;
}

TEST(AccessLogJsonTest, HostileBytesStayValidJson) {
  std::string line = accessLogJson(record(200, 1.5));
  auto j = nlohmann::json::parse(line, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << line;
  EXPECT_EQ(j["path"], "/a\"b\\c\n\x01\x7f/caf\xc3\xa9/\xef\xbf\xbd\xef\xbf\xbd");  // invalid bytes -> U+FFFD
  EXPECT_EQ(j["time"], "2025-11-24T16:00:00.123Z");
  EXPECT_EQ(j["status"], 200);
  EXPECT_DOUBLE_EQ(j["duration_ms"].get<double>(), 1.5);
  EXPECT_EQ(j["response_bytes"], 12);
  EXPECT_EQ(j["upstream_host"], "10.0.0.1:80");
  EXPECT_EQ(line.find('\n'), std::string::npos);
}

TEST(HttpStatsTest, SeriesAccumulateAcrossRequests) {
  MetricsRegistry m;
  HttpStats stats(m);
  stats.record(record(200, 0.5));
  stats.record(record(200, 7));
  stats.record(record(503, 20000));
  MetricsRegistry::Labels base = {{"route", "web/default"},
                                  {"cluster", "web:80"},
                                  {"source_workload", "frontend"},
                                  {"destination_workload", "web"}};
  auto with = [&](const char* k, const char* v) {
    auto l = base;
    l.emplace_back(k, v);
    return l;
  };
  EXPECT_EQ(m.get("offcore_mesh_requests_total", with("response_code", "200")), 2);
  EXPECT_EQ(m.get("offcore_mesh_requests_total", with("response_code", "503")), 1);
  EXPECT_EQ(m.get("offcore_mesh_request_duration_ms_bucket", with("le", "1")), 1);
  EXPECT_EQ(m.get("offcore_mesh_request_duration_ms_bucket", with("le", "10")), 2);
  EXPECT_EQ(m.get("offcore_mesh_request_duration_ms_bucket", with("le", "10000")), 2);
  EXPECT_EQ(m.get("offcore_mesh_request_duration_ms_bucket", with("le", "+Inf")), 3);
  EXPECT_EQ(m.get("offcore_mesh_request_duration_ms_count", base), 3);
  EXPECT_DOUBLE_EQ(m.get("offcore_mesh_request_duration_ms_sum", base), 20007.5);
  EXPECT_EQ(m.get("offcore_mesh_response_bytes_total", base), 36);
  EXPECT_EQ(m.renderText().find("offcore_mesh_retries_total{"), std::string::npos);  // none yet
  auto retried = record(200, 1);
  retried.retries = 2;
  stats.record(retried);
  EXPECT_EQ(m.get("offcore_mesh_retries_total", base), 2);
}

}  // namespace
}  // namespace offcore::mesh::l7::testing
