#include "mesh/l7/http2_session.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "h2_downstream.h"
#include "proxy_fixture.h"

namespace offcore::mesh::l7::testing {
namespace {

class Http2Test : public ProxyTest {
 protected:
  void SetUp() override {
    ProxyTest::SetUp();
    ASSERT_TRUE(h2down.start(loop, ctx, info).ok());
  }
  void TearDown() override {
    h2down.sessions.clear();
    runUntil(
        loop, [] { return false; }, Millis(5));
    ProxyTest::TearDown();
  }
  std::string url(const std::string& path) { return "http://127.0.0.1:" + std::to_string(h2down.port()) + path; }
  H2Downstream h2down;
};

TEST_F(Http2Test, StreamsAreRoutedLikeHttp1) {
  if (::system("command -v nghttp >/dev/null") != 0) GTEST_SKIP() << "nghttp (nghttp2-client) is not installed";
  server("10.1.0.1", 8080, "web-v1");
  server("10.2.0.1", 8080, "api");
  Snapshot s;
  s.services = {service("web", "10.96.0.10", {endpoint("10.1.0.1", 8080)}),
                service("api", "10.96.0.11", {endpoint("10.2.0.1", 8080)})};
  VirtualService vs;
  vs.name = "web";
  vs.hosts = {"web"};
  HttpRoute api = routeTo({dest("api")});
  HttpMatch m;
  m.uri = StringMatch{StringMatch::Kind::kPrefix, "/api/"};
  api.match = {m};
  HttpRoute deny = routeTo({dest("web")});
  HttpMatch d;
  d.uri = StringMatch{StringMatch::Kind::kExact, "/teapot"};
  deny.match = {d};
  deny.fault_abort = FaultAbort{100, 418};
  vs.http = {api, deny, routeTo({dest("web")})};
  s.config.virtual_services = {vs};
  apply(s);
  // Three streams on one connection; :authority picks the Service.
  std::string out =
      runWhileServing(loop, "nghttp -H ':authority: web' " + url("/api/x") + " " + url("/") + " " + url("/teapot"));
  EXPECT_NE(out.find("api"), std::string::npos) << out;
  EXPECT_NE(out.find("web-v1"), std::string::npos) << out;
  std::string verbose = runWhileServing(loop, "nghttp -v -H ':authority: web' " + url("/teapot"));
  EXPECT_NE(verbose.find(":status: 418"), std::string::npos) << verbose;
  std::string post = runWhileServing(
      loop, "echo -n hello > /tmp/offcore-h2-body-$$ && nghttp -v -d /tmp/offcore-h2-body-$$ -H ':authority: web' " +
                url("/up") + "; rm -f /tmp/offcore-h2-body-$$");
  EXPECT_NE(post.find(":status: 200"), std::string::npos) << post;
  ASSERT_GE(log.size(), 5u);
  EXPECT_EQ(log.back().request_bytes, 5u);
  EXPECT_EQ(log.back().method, "POST");
}

// A client that opens the connection and then sends nothing: after the
// idle timeout the session says GOAWAY and closes, as HTTP/1.1 sessions do.
TEST_F(Http2Test, IdleConnectionGetsGoawayAndIsClosed) {
  HttpProxyOptions opts;
  opts.downstream_idle_timeout = Millis(150);
  ctx = std::make_unique<HttpProxyContext>(loop, connector, metrics, random, opts);
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(h2down.port());
  ::inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  std::string hello(kHttp2Preface);
  hello += std::string("\0\0\0\x04\0\0\0\0\0", 9);  // an empty SETTINGS frame
  ASSERT_EQ(::send(fd, hello.data(), hello.size(), 0), static_cast<ssize_t>(hello.size()));
  std::string got;
  bool eof = false;
  auto t0 = std::chrono::steady_clock::now();
  runUntil(
      loop,
      [&] {
        char buf[512];
        ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) got.append(buf, static_cast<size_t>(n));
        eof = n == 0;
        return eof;
      },
      Millis(3000));
  auto waited = std::chrono::steady_clock::now() - t0;
  ::close(fd);
  ASSERT_TRUE(eof) << "the idle connection was not closed";
  EXPECT_GE(waited, Millis(100));
  // Frames: 9-byte headers; find a GOAWAY (type 7).
  bool goaway = false;
  for (size_t off = 0; off + 9 <= got.size();) {
    size_t len = (static_cast<unsigned char>(got[off]) << 16) | (static_cast<unsigned char>(got[off + 1]) << 8) |
                 static_cast<unsigned char>(got[off + 2]);
    goaway = goaway || got[off + 3] == 7;
    off += 9 + len;
  }
  EXPECT_TRUE(goaway) << got.size() << " bytes, no GOAWAY";
}

}  // namespace
}  // namespace offcore::mesh::l7::testing
