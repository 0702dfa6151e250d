#include "mesh/l7/stats.h"

#include <algorithm>
#include <cstdio>
#include <ctime>

namespace offcore::mesh::l7 {

namespace {

// Length of the valid UTF-8 sequence at v[i], or 0 (overlongs and
// surrogates are not screened: the log is for people and jq, not a codec).
size_t utf8Length(std::string_view v, size_t i) {
  auto b = static_cast<unsigned char>(v[i]);
  size_t n = b >= 0xF0 && b <= 0xF4 ? 4 : b >= 0xE0 ? 3 : b >= 0xC2 && b <= 0xDF ? 2 : 0;
  if (n == 0 || i + n > v.size()) return 0;
  for (size_t k = 1; k < n; ++k)
    if ((static_cast<unsigned char>(v[i + k]) & 0xC0) != 0x80) return 0;
  return n;
}

// A JSON string literal (RFC 8259 escaping); bytes that are not UTF-8
// become U+FFFD, as nlohmann's replace handler does.
void appendJsonString(std::string& out, std::string_view v) {
  out += '"';
  for (size_t i = 0; i < v.size(); ++i) {
    char c = v[i];
    auto u = static_cast<unsigned char>(c);
    if (u >= 0x80) {
      size_t n = utf8Length(v, i);
      if (n == 0) {
        out += "\\ufffd";
      } else {
        out.append(v.substr(i, n));
        i += n - 1;
      }
      continue;
    }
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (u < 0x20 || u == 0x7F) {
          char b[8];
          std::snprintf(b, sizeof b, "\\u%04x", u);
          out += b;
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

}  // namespace

// Built by hand, not through nlohmann::json: one line per request is on the
// proxy's hot path, and a json object costs a map node per field.
std::string accessLogJson(const RequestRecord& r) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(r.start.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char when[48];
  size_t n = std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(when + n, sizeof when - n, ".%03dZ", static_cast<int>(ms % 1000));
  char num[32];
  std::string out;
  out.reserve(320 + r.path.size() + r.authority.size());
  auto field = [&](const char* name, std::string_view v) {
    out += out.empty() ? "{\"" : ",\"";
    out += name;
    out += "\":";
    appendJsonString(out, v);
  };
  auto number = [&](const char* name, const char* fmt, auto v) {
    out += ",\"";
    out += name;
    out += "\":";
    std::snprintf(num, sizeof num, fmt, v);
    out += num;
  };
  field("time", when);
  field("source_workload", r.source_workload);
  field("destination_workload", r.destination_workload);
  field("method", r.method);
  field("path", r.path);
  field("authority", r.authority);
  number("status", "%d", r.status);
  number("duration_ms", "%.3f", r.duration_ms);
  number("request_bytes", "%llu", static_cast<unsigned long long>(r.request_bytes));
  number("response_bytes", "%llu", static_cast<unsigned long long>(r.response_bytes));
  field("upstream_host", r.upstream_host);
  number("retries", "%u", r.retries);
  field("route", r.route);
  field("cluster", r.cluster);
  field("flags", r.flags);
  if (!r.grpc_status.empty()) field("grpc_status", r.grpc_status);
  if (r.retry_abandoned) out += ",\"retry_abandoned\":true";
  out += '}';
  return out;
}

HttpStats::HttpStats(MetricsRegistry& registry) : registry_(registry) {
  registry_.describe("offcore_mesh_requests_total", "counter", "HTTP requests through the node proxy");
  registry_.describe("offcore_mesh_request_duration_ms", "histogram", "HTTP request duration through the proxy");
  registry_.describe("offcore_mesh_request_bytes_total", "counter", "HTTP request body bytes");
  registry_.describe("offcore_mesh_response_bytes_total", "counter", "HTTP response body bytes");
  registry_.describe("offcore_mesh_retries_total", "counter", "upstream retries");
  registry_.describe("offcore_mesh_overflow_total", "counter", "requests refused by a circuit breaker");
  registry_.describe("offcore_mesh_ejections_total", "counter", "outlier ejections");
  registry_.describe("offcore_mesh_upstream_h2_connections_total", "counter", "HTTP/2 upstream connections opened");
  registry_.describe("offcore_mesh_upstream_h2_streams_total", "counter", "streams on HTTP/2 upstream connections");
  registry_.describe("offcore_mesh_upstream_h2_peak_streams", "gauge",
                     "most concurrent streams seen on one HTTP/2 upstream connection");
  registry_.describe("offcore_mesh_retry_overflow_total", "counter", "retries refused by the retry budget");
  registry_.describe("offcore_mesh_retry_abandoned_total", "counter",
                     "retries not attempted: more than request_buffer_limit of the body had gone upstream");
  registry_.describe("offcore_mesh_downstream_rq_idle_timeout_total", "counter",
                     "requests cut by the stream idle timeout (408, or a reset once the response started)");
}

HttpStats::Series& HttpStats::seriesFor(const RequestRecord& r) {
  std::string key = r.route;
  for (const std::string* part : {&r.cluster, &r.source_workload, &r.destination_workload}) key += '\x1f' + *part;
  auto [it, fresh] = series_.try_emplace(std::move(key));
  Series& s = it->second;
  if (!fresh) return s;
  s.labels = {{"route", r.route},
              {"cluster", r.cluster},
              {"source_workload", r.source_workload},
              {"destination_workload", r.destination_workload}};
  s.request_bytes = registry_.series("offcore_mesh_request_bytes_total", s.labels);
  s.response_bytes = registry_.series("offcore_mesh_response_bytes_total", s.labels);
  for (size_t i = 0; i <= std::size(kLatencyBucketsMs); ++i) {
    auto l = s.labels;
    char b[32] = "+Inf";
    if (i < std::size(kLatencyBucketsMs)) std::snprintf(b, sizeof b, "%g", kLatencyBucketsMs[i]);
    l.emplace_back("le", b);
    s.buckets[i] = registry_.series("offcore_mesh_request_duration_ms_bucket", l);
  }
  s.sum = registry_.series("offcore_mesh_request_duration_ms_sum", s.labels);
  s.count = registry_.series("offcore_mesh_request_duration_ms_count", s.labels);
  return s;
}

void HttpStats::record(const RequestRecord& r) {
  Series& s = seriesFor(r);
  double*& by_code = s.by_code[{r.status, r.grpc_status}];
  if (!by_code) {
    auto l = s.labels;
    l.emplace_back("response_code", std::to_string(r.status));
    if (!r.grpc_status.empty()) l.emplace_back("grpc_status", r.grpc_status);
    by_code = registry_.series("offcore_mesh_requests_total", l);
  }
  *by_code += 1;
  *s.request_bytes += static_cast<double>(r.request_bytes);
  *s.response_bytes += static_cast<double>(r.response_bytes);
  if (r.retries) {
    if (!s.retries) s.retries = registry_.series("offcore_mesh_retries_total", s.labels);
    *s.retries += r.retries;
  }
  // Cumulative buckets: every bound at or above the duration, and +Inf.
  for (size_t i = 0; i <= std::size(kLatencyBucketsMs); ++i) {
    if (i == std::size(kLatencyBucketsMs) || r.duration_ms <= kLatencyBucketsMs[i]) *s.buckets[i] += 1;
  }
  *s.sum += r.duration_ms;
  *s.count += 1;
}

void HttpStats::overflow(const std::string& cluster) {
  registry_.add("offcore_mesh_overflow_total", {{"cluster", cluster}}, 1);
}

void HttpStats::upstreamH2Stream(const std::string& cluster, size_t active, bool new_conn) {
  auto [it, fresh] = h2_series_.try_emplace(cluster);
  H2Series& h = it->second;
  if (fresh) {
    MetricsRegistry::Labels l = {{"cluster", cluster}};
    h.connections = registry_.series("offcore_mesh_upstream_h2_connections_total", l);
    h.streams = registry_.series("offcore_mesh_upstream_h2_streams_total", l);
    h.peak = registry_.series("offcore_mesh_upstream_h2_peak_streams", l);
  }
  if (new_conn) *h.connections += 1;
  *h.streams += 1;
  *h.peak = std::max(*h.peak, static_cast<double>(active));
}

void HttpStats::ejection(const std::string& cluster) {
  registry_.add("offcore_mesh_ejections_total", {{"cluster", cluster}}, 1);
}

void HttpStats::retryOverflow(const std::string& cluster) {
  registry_.add("offcore_mesh_retry_overflow_total", {{"cluster", cluster}}, 1);
}

void HttpStats::retryAbandoned(const std::string& cluster) {
  registry_.add("offcore_mesh_retry_abandoned_total", {{"cluster", cluster}}, 1);
}

void HttpStats::streamIdleTimeout(const std::string& cluster) {
  registry_.add("offcore_mesh_downstream_rq_idle_timeout_total", {{"cluster", cluster}}, 1);
}

}  // namespace offcore::mesh::l7
