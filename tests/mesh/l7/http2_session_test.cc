#include "mesh/l7/http2_session.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <thread>

#include "proxy_fixture.h"

namespace offcore::mesh::l7::testing {
namespace {

// Runs a command on a thread while the test loop keeps serving.
std::string runWhileServing(EventLoop& loop, const std::string& cmd) {
  std::string out;
  std::atomic<bool> done{false};
  std::thread t([&] {
    FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
    char buf[4096];
    size_t n;
    while (p && (n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    if (p) ::pclose(p);
    done = true;
  });
  runUntil(
      loop, [&] { return done.load(); }, Millis(20000));
  t.join();
  return out;
}

class Http2Test : public ProxyTest {
 protected:
  void SetUp() override {
    ProxyTest::SetUp();
    auto l = TcpListener::listen(loop, "127.0.0.1", 0, {}, [this](std::unique_ptr<Transport> t) {
      auto s = std::make_unique<Http2Session>(
          *ctx, std::move(t), info, [this](Http2Session* done) { loop.post([this, done] { h2.erase(done); }); });
      Http2Session* raw = s.get();
      h2[raw] = std::move(s);
    });
    ASSERT_TRUE(l.ok());
    h2_listener = std::move(*l);
  }
  void TearDown() override {
    h2.clear();
    runUntil(
        loop, [] { return false; }, Millis(5));
    ProxyTest::TearDown();
  }
  std::string url(const std::string& path) { return "http://127.0.0.1:" + std::to_string(h2_listener->port()) + path; }
  std::unique_ptr<TcpListener> h2_listener;
  std::map<Http2Session*, std::unique_ptr<Http2Session>> h2;
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

}  // namespace
}  // namespace offcore::mesh::l7::testing
