// Request bodies stream through the proxy (HTTP/1.1 Content-Length and
// chunked, HTTP/2 DATA; to HTTP/1.1 and HTTP/2 upstreams) with bounded
// buffering; retries replay a body only while the proxy still holds it whole;
// request trailers reach HTTP/2 upstreams (and chunked HTTP/1.1 ones).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <thread>

#include "h2_downstream.h"
#include "h2_fake_server.h"
#include "mesh/l7/http2_session.h"
#include "proxy_fixture.h"

namespace offcore::mesh::l7::testing {
namespace {

constexpr size_t kLimit = 1 << 20;  // HttpProxyOptions::request_buffer_limit
// What the proxy may hold above the limit: one read from the client.
constexpr size_t kSlack = 256 << 10;

// A body of n bytes that is not a repeated pattern.
std::string makeBody(size_t n) {
  std::string b(n, '\0');
  uint64_t x = 0x9e3779b97f4a7c15ull;
  for (auto& c : b) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    c = static_cast<char>(x);
  }
  return b;
}

std::string chunked(std::string_view body, const std::string& trailers = "") {
  std::string out;
  for (size_t off = 0; off < body.size(); off += 64 << 10) out += http::encodeChunk(body.substr(off, 64 << 10));
  return out + "0\r\n" + trailers + "\r\n";
}

class StreamingTest : public ProxyTest {
 protected:
  // Service "web" (VIP 10.96.0.10) with one endpoint; optionally a route
  // that retries 5xx once, and HTTP/2 to the upstream.
  void setUp(bool retries, bool h2_upstream = false) {
    Snapshot s;
    s.services = {service("web", "10.96.0.10", {endpoint("10.1.0.1", 8080)})};
    if (h2_upstream) s.services[0].ports[0].app_protocol = "http2";
    if (retries) {
      VirtualService vs;
      vs.name = "web";
      vs.hosts = {"web"};
      HttpRoute r = routeTo({dest("web")});
      r.retries = RetryPolicy{1, Millis(0), {"5xx"}};
      vs.http = {r};
      s.config.virtual_services = {vs};
    }
    apply(s);
  }
  FakeH2Server& h2Server() {
    h2_servers.push_back(std::make_unique<FakeH2Server>(loop));
    connector.map["10.1.0.1:8080"] = h2_servers.back()->port();
    return *h2_servers.back();
  }
  static std::string post(size_t length) {
    return "POST /up HTTP/1.1\r\nHost: web\r\nContent-Length: " + std::to_string(length) + "\r\n\r\n";
  }
  std::vector<std::unique_ptr<FakeH2Server>> h2_servers;
};

TEST_F(StreamingTest, ContentLengthBodyLargerThanTheBoundStreamsThrough) {
  auto& up = server("10.1.0.1", 8080, "web");
  setUp(false);
  std::string body = makeBody(3 * kLimit + 12345);
  auto c = client();
  c->send(post(body.size()) + body);
  ASSERT_TRUE(c->waitFor(1, Millis(10000)));
  EXPECT_EQ(c->responses[0].status, 200);
  ASSERT_EQ(up.bodies.size(), 1u);
  EXPECT_EQ(up.bodies[0].size, body.size());
  EXPECT_EQ(up.bodies[0].hash, fnv(kFnvSeed, body));
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].request_bytes, body.size());
  EXPECT_LE(log[0].request_buffer_peak, kLimit + kSlack);
}

TEST_F(StreamingTest, ChunkedBodyAndItsTrailersStreamToAnHttp1Upstream) {
  auto& up = server("10.1.0.1", 8080, "web");
  setUp(false);
  std::string body = makeBody(3 * kLimit + 7);
  auto c = client();
  c->send("POST /up HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n" +
          chunked(body, "x-checksum: abc\r\ncontent-length: 1\r\n"));
  ASSERT_TRUE(c->waitFor(1, Millis(10000)));
  EXPECT_EQ(c->responses[0].status, 200);
  ASSERT_EQ(up.bodies.size(), 1u);
  EXPECT_EQ(up.bodies[0].size, body.size());
  EXPECT_EQ(up.bodies[0].hash, fnv(kFnvSeed, body));
  // Trailers go on in the upstream's chunked framing; framing fields do not.
  const std::string* sum = http::findHeader(up.bodies[0].trailers, "x-checksum");
  ASSERT_NE(sum, nullptr);
  EXPECT_EQ(*sum, "abc");
  EXPECT_EQ(http::findHeader(up.bodies[0].trailers, "content-length"), nullptr);
  EXPECT_LE(log[0].request_buffer_peak, kLimit + kSlack);
}

// The upstream stops reading: the proxy stops reading the client once it
// holds request_buffer_limit, and the body completes once the upstream reads.
TEST_F(StreamingTest, ASlowUpstreamPausesTheClientAndBufferingStaysBounded) {
  auto& up = server("10.1.0.1", 8080, "web");
  up.pauseReading(true);
  setUp(false);
  std::string body = makeBody(48 * kLimit);
  auto c = client();
  c->send(post(body.size()) + body);
  runUntil(
      loop, [] { return false; }, Millis(500));
  // The socket buffers on the way took some; the rest waits at the client.
  EXPECT_GT(c->pendingOut(), 0u);
  up.pauseReading(false);
  ASSERT_TRUE(c->waitFor(1, Millis(20000)));
  EXPECT_EQ(c->responses[0].status, 200);
  ASSERT_EQ(up.bodies.size(), 1u);
  EXPECT_EQ(up.bodies[0].size, body.size());
  EXPECT_EQ(up.bodies[0].hash, fnv(kFnvSeed, body));
  ASSERT_EQ(log.size(), 1u);
  EXPECT_LE(log[0].request_buffer_peak, kLimit + kSlack);
}

TEST_F(StreamingTest, ARetryReplaysASmallBody) {
  auto& up = server("10.1.0.1", 8080, "web", [](const http::MessageHead&, int hit) {
    return Reply{hit == 1 ? 503 : 200, "", 0, false};
  });
  setUp(true);
  std::string body = makeBody(100 << 10);
  auto c = client();
  c->send(post(body.size()) + body);
  ASSERT_TRUE(c->waitFor(1, Millis(10000)));
  EXPECT_EQ(c->responses[0].status, 200);
  ASSERT_EQ(up.bodies.size(), 2u);
  for (const auto& b : up.bodies) {
    EXPECT_EQ(b.size, body.size());
    EXPECT_EQ(b.hash, fnv(kFnvSeed, body));
  }
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].retries, 1u);
  EXPECT_FALSE(log[0].retry_abandoned);
}

// More than the bound went upstream before the 503: the start of the body is
// gone, the retry is not attempted and that is counted.
TEST_F(StreamingTest, NoRetryOnceMoreThanTheBoundWentUpstream) {
  auto& up = server("10.1.0.1", 8080, "web", [](const http::MessageHead&, int) { return Reply{503, "", 0, false}; });
  setUp(true);
  std::string body = makeBody(3 * kLimit);
  auto c = client();
  c->send(post(body.size()) + body);
  ASSERT_TRUE(c->waitFor(1, Millis(10000)));
  EXPECT_EQ(c->responses[0].status, 503);  // the upstream's own answer
  EXPECT_EQ(up.hits, 1);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].retries, 0u);
  EXPECT_TRUE(log[0].retry_abandoned);
  EXPECT_NE(accessLogJson(log[0]).find("\"retry_abandoned\":true"), std::string::npos);
  EXPECT_NE(metrics.renderText().find("offcore_mesh_retry_abandoned_total{cluster=\"web:80\"} 1"), std::string::npos)
      << metrics.renderText();
}

// The upstream resets mid-body: the client gets the proxy's 503 at once
// (not after its upload) and then the connection closes; nothing hangs.
TEST_F(StreamingTest, AnUpstreamResetMidBodyIsAnsweredAndTheConnectionCloses) {
  auto& up = server("10.1.0.1", 8080, "web");
  up.reset_after = kLimit / 2;
  setUp(false);
  std::string body = makeBody(2 * kLimit);
  auto c = client();
  c->send(post(8 * kLimit) + body);  // declares more than it sends
  ASSERT_TRUE(c->waitFor(1, Millis(5000)));
  EXPECT_EQ(c->responses[0].status, 503);
  EXPECT_EQ(*http::findHeader(c->responses[0].headers, "connection"), "close");
  EXPECT_TRUE(runUntil(
      loop, [&] { return c->closed; }, Millis(15000)));
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].flags, "UR");
}

// The route timeout starts when the request has ended (as Envoy's): a slow
// upload is not cut by it; a response that does not come is.
TEST_F(StreamingTest, TheRouteTimeoutStartsAtTheEndOfTheRequest) {
  server("10.1.0.1", 8080, "web", [](const http::MessageHead& h, int) {
    return Reply{200, "", h.path == "/slow-answer" ? 2000 : 0, false};
  });
  Snapshot s;
  s.services = {service("web", "10.96.0.10", {endpoint("10.1.0.1", 8080)})};
  VirtualService vs;
  vs.name = "web";
  vs.hosts = {"web"};
  HttpRoute r = routeTo({dest("web")});
  r.timeout = Millis(300);
  vs.http = {r};
  s.config.virtual_services = {vs};
  apply(s);
  auto c = client();
  std::string body = makeBody(4096);
  c->send(post(2 * body.size()) + body);
  runUntil(
      loop, [] { return false; }, Millis(600));  // longer than the route timeout, mid-body
  EXPECT_TRUE(c->responses.empty());
  c->send(body);
  ASSERT_TRUE(c->waitFor(1));
  EXPECT_EQ(c->responses[0].status, 200);
  c->send("POST /slow-answer HTTP/1.1\r\nHost: web\r\nContent-Length: 2\r\n\r\nhi");
  ASSERT_TRUE(c->waitFor(2));
  EXPECT_EQ(c->responses[1].status, 504);
}

TEST_F(StreamingTest, ChunkedBodyAndTrailersReachAnHttp2Upstream) {
  auto& up = h2Server();
  setUp(false, true);
  std::string body = makeBody(3 * kLimit + 99);
  auto c = client();
  c->send("POST /up HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n" +
          chunked(body, "grpc-status-details-bin: AAEC\r\nx-sum: 42\r\n"));
  ASSERT_TRUE(c->waitFor(1, Millis(10000)));
  EXPECT_EQ(c->responses[0].status, 200);
  ASSERT_EQ(up.done.size(), 1u);
  EXPECT_EQ(up.done[0].body.size, body.size());
  EXPECT_EQ(up.done[0].body.hash, fnv(kFnvSeed, body));
  ASSERT_TRUE(up.done[0].trailers_seen);
  const std::string* sum = http::findHeader(up.done[0].body.trailers, "x-sum");
  ASSERT_NE(sum, nullptr);
  EXPECT_EQ(*sum, "42");
  EXPECT_NE(http::findHeader(up.done[0].body.trailers, "grpc-status-details-bin"), nullptr);
  EXPECT_LE(log[0].request_buffer_peak, kLimit + kSlack);
}

// HTTP/2 downstream (nghttp): DATA frames stream to an HTTP/1.1 upstream,
// and request trailers go on to an HTTP/2 upstream.
class StreamingH2Test : public StreamingTest {
 protected:
  void SetUp() override {
    StreamingTest::SetUp();
    ASSERT_TRUE(h2down.start(loop, ctx, info).ok());
    file = "/tmp/offcore-stream-body-" + std::to_string(::getpid());
  }
  void TearDown() override {
    h2down.sessions.clear();
    std::remove(file.c_str());
    runUntil(
        loop, [] { return false; }, Millis(5));
    StreamingTest::TearDown();
  }
  std::string nghttp(const std::string& body, const std::string& extra) {
    std::ofstream(file, std::ios::binary) << body;
    return runWhileServing(loop, "nghttp -v " + extra + " -d " + file +
                                     " -H ':authority: web' http://127.0.0.1:" + std::to_string(h2down.port()) + "/up");
  }
  H2Downstream h2down;
  std::string file;
};

TEST_F(StreamingH2Test, DataFramesStreamToAnHttp1Upstream) {
  if (::system("command -v nghttp >/dev/null") != 0) GTEST_SKIP() << "nghttp (nghttp2-client) is not installed";
  auto& up = server("10.1.0.1", 8080, "web");
  setUp(false);
  std::string body = makeBody(5 * kLimit + 3);
  std::string out = nghttp(body, "");
  EXPECT_NE(out.find(":status: 200"), std::string::npos) << out.substr(0, 2000);
  ASSERT_EQ(up.bodies.size(), 1u);
  EXPECT_EQ(up.bodies[0].size, body.size());
  EXPECT_EQ(up.bodies[0].hash, fnv(kFnvSeed, body));
  ASSERT_EQ(log.size(), 1u);
  EXPECT_LE(log[0].request_buffer_peak, kLimit + kSlack);
}

TEST_F(StreamingH2Test, RequestTrailersReachAnHttp2Upstream) {
  if (::system("command -v nghttp >/dev/null") != 0) GTEST_SKIP() << "nghttp (nghttp2-client) is not installed";
  auto& up = h2Server();
  setUp(false, true);
  std::string body = makeBody(2 * kLimit);
  std::string out = nghttp(body, "--trailer='x-request-sum: 7'");
  EXPECT_NE(out.find(":status: 200"), std::string::npos) << out.substr(0, 2000);
  ASSERT_EQ(up.done.size(), 1u);
  EXPECT_EQ(up.done[0].body.size, body.size());
  EXPECT_EQ(up.done[0].body.hash, fnv(kFnvSeed, body));
  const std::string* sum = http::findHeader(up.done[0].body.trailers, "x-request-sum");
  ASSERT_NE(sum, nullptr);
  EXPECT_EQ(*sum, "7");
}

}  // namespace
}  // namespace offcore::mesh::l7::testing
