// Envoy's stream idle timeout in the L7 proxy (HTTP/1.1 and HTTP/2
// downstreams, HTTP/1.1 and HTTP/2 upstreams), its per-route and per-listener
// overrides, and the RST_STREAM(NO_ERROR) that ends an HTTP/2 stream whose
// response came before the end of its request.
#include <gtest/gtest.h>

#include <chrono>

#include "h2_downstream.h"
#include "h2_fake_server.h"
#include "h2_test_client.h"
#include "proxy_fixture.h"

namespace offcore::mesh::l7::testing {
namespace {

constexpr Millis kIdle{200};  // the tests' stream idle timeout

// An HTTP/1.1 upstream that answers every request with a head announcing
// `total` body bytes and one byte, then one more byte per `trickle` (none
// when trickle is 0: the response stalls).
class TrickleServer {
 public:
  TrickleServer(EventLoop& loop, size_t total, Millis trickle) : loop_(loop), total_(total), trickle_(trickle) {
    auto l = TcpListener::listen(loop, "127.0.0.1", 0, {}, [this](std::unique_ptr<Transport> t) {
      conns_.push_back(std::make_unique<Conn>(this, std::move(t)));
    });
    EXPECT_TRUE(l.ok());
    listener_ = std::move(*l);
  }
  ~TrickleServer() {
    for (auto& c : conns_)
      if (c->timer) loop_.cancelTimer(c->timer);
  }
  uint16_t port() const { return listener_->port(); }
  size_t openConns() const {
    size_t n = 0;
    for (const auto& c : conns_) n += c->closed ? 0 : 1;
    return n;
  }

 private:
  struct Conn : Transport::Callbacks {
    Conn(TrickleServer* s, std::unique_ptr<Transport> transport) : server(s), t(std::move(transport)) {
      t->setCallbacks(this);
    }
    TrickleServer* server;
    std::unique_ptr<Transport> t;
    size_t sent = 0;
    bool answered = false, closed = false;
    EventLoop::TimerId timer = 0;
    void onData(std::string_view) override {
      if (answered) return;
      answered = true;
      t->write("HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(server->total_) + "\r\n\r\nx");
      sent = 1;
      next();
    }
    void next() {
      if (server->trickle_.count() == 0 || sent >= server->total_ || closed) return;
      timer = server->loop_.addTimer(server->trickle_, [this] {
        timer = 0;
        if (closed) return;
        t->write("x");
        ++sent;
        next();
      });
    }
    void onEnd() override { t->endWrite(); }
    void onClosed(const Status&) override { closed = true; }
  };
  EventLoop& loop_;
  size_t total_;
  Millis trickle_;
  std::unique_ptr<TcpListener> listener_;
  std::vector<std::unique_ptr<Conn>> conns_;
};

class StreamIdleTest : public ProxyTest {
 protected:
  void SetUp() override {
    ProxyTest::SetUp();
    info.dst_ip = "10.96.0.10";
    info.dst_port = 80;
    ASSERT_TRUE(h2down.start(loop, ctx, info).ok());
  }
  void TearDown() override {
    h2down.sessions.clear();
    runUntil(
        loop, [] { return false; }, Millis(5));
    trickle.reset();
    ProxyTest::TearDown();
  }
  // The proxy's stream_idle_timeout (the context is replaced: sessions
  // accepted from now on use it).
  void idleTimeout(Millis t) {
    sessions.clear();  // they hold the old context
    h2down.sessions.clear();
    runUntil(
        loop, [] { return false; }, Millis(5));  // what they posted
    HttpProxyOptions o;
    o.stream_idle_timeout = t;
    ctx = std::make_unique<HttpProxyContext>(loop, connector, metrics, random, o);
    ctx->setAccessLog([this](const RequestRecord& r) { log.push_back(r); });
  }
  // Service web (VIP 10.96.0.10:80) -> 10.1.0.1:8080, and a route for it.
  void setUp(const HttpRoute& route, const std::string& app_protocol = "http",
             std::optional<Millis> port_idle = std::nullopt) {
    Snapshot s;
    s.services = {service("web", "10.96.0.10", {endpoint("10.1.0.1", 8080)})};
    s.services[0].ports[0].app_protocol = app_protocol;
    s.services[0].ports[0].stream_idle_timeout = port_idle;
    VirtualService vs;
    vs.name = "web";
    vs.hosts = {"web"};
    vs.http = {route};
    s.config.virtual_services = {vs};
    apply(s);
  }
  TrickleServer& trickleServer(size_t total, Millis every) {
    trickle = std::make_unique<TrickleServer>(loop, total, every);
    connector.map["10.1.0.1:8080"] = trickle->port();
    return *trickle;
  }
  FakeH2Server& h2Server() {
    h2_servers.push_back(std::make_unique<FakeH2Server>(loop));
    connector.map["10.1.0.1:8080"] = h2_servers.back()->port();
    return *h2_servers.back();
  }
  static std::string post(size_t length, const std::string& path = "/up") {
    return "POST " + path + " HTTP/1.1\r\nHost: web\r\nContent-Length: " + std::to_string(length) + "\r\n\r\n";
  }
  double idleTimeouts() {
    std::string text = metrics.renderText();
    std::string key = "offcore_mesh_downstream_rq_idle_timeout_total{cluster=\"web:80\"} ";
    auto at = text.find(key);
    return at == std::string::npos ? 0 : std::atof(text.c_str() + at + key.size());
  }
  // Waits (up to `limit`) for the access-log record of one request.
  bool logged(size_t n, Millis limit = Millis(3000)) {
    return runUntil(
        loop, [&] { return log.size() >= n; }, limit);
  }

  H2Downstream h2down;
  std::unique_ptr<TrickleServer> trickle;
  std::vector<std::unique_ptr<FakeH2Server>> h2_servers;
};

TEST_F(StreamIdleTest, AnHttp1ClientQuietMidBodyGets408AndTheUpstreamIsClosed) {
  idleTimeout(kIdle);
  auto& up = server("10.1.0.1", 8080, "web");
  setUp(routeTo({dest("web")}));
  auto c = client();
  auto t0 = std::chrono::steady_clock::now();
  c->send(post(8192) + std::string(4096, 'a'));  // half the body, then nothing
  ASSERT_TRUE(runUntil(
      loop, [&] { return up.hits == 0 && up.openConns() == 1; }, Millis(1000)));  // the request went upstream
  ASSERT_TRUE(c->waitFor(1, Millis(3000)));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, kIdle - Millis(20));
  EXPECT_EQ(c->responses[0].status, 408);
  EXPECT_EQ(c->responses[0].body, "stream timeout");
  const std::string* conn = http::findHeader(c->responses[0].headers, "connection");
  ASSERT_NE(conn, nullptr);
  EXPECT_EQ(*conn, "close");  // the rest of that body is not taken for a next request
  // The upstream attempt is cancelled: its connection, mid-request, is closed, not pooled.
  EXPECT_TRUE(runUntil(
      loop, [&] { return up.openConns() == 0; }, Millis(2000)));
  EXPECT_EQ(up.hits, 0);
  EXPECT_EQ(ctx->clusters().at("web:80").counters().active_requests, 0u);
  ASSERT_TRUE(logged(1));
  EXPECT_EQ(log[0].status, 408);
  EXPECT_EQ(log[0].flags, "SI");
  EXPECT_NE(accessLogJson(log[0]).find("\"flags\":\"SI\""), std::string::npos);
  EXPECT_EQ(idleTimeouts(), 1);
}

TEST_F(StreamIdleTest, AnHttp2ClientQuietMidBodyGets408AndTheUpstreamStreamIsCancelled) {
  idleTimeout(kIdle);
  auto& up = h2Server();
  setUp(routeTo({dest("web")}), "http2");
  H2Client c(loop, h2down.port());
  ASSERT_TRUE(c.connected());
  int32_t id = c.open("POST", "/up", false, 8192);
  c.send(id, std::string(4096, 'a'), false);
  ASSERT_TRUE(runUntil(
      loop, [&] { return c.streams[id].closed; }, Millis(3000)));
  const auto& s = c.streams[id];
  EXPECT_EQ(s.status, 408);
  EXPECT_EQ(s.body, "stream timeout");
  EXPECT_TRUE(s.response_ended);
  // The request never ended: the whole 408, then RST_STREAM(NO_ERROR).
  EXPECT_TRUE(s.reset);
  EXPECT_EQ(s.reset_code, static_cast<uint32_t>(NGHTTP2_NO_ERROR));
  EXPECT_TRUE(s.reset_after_end);
  EXPECT_FALSE(c.closed);
  // The upstream stream was reset (CANCEL), not left open.
  EXPECT_TRUE(runUntil(
      loop, [&] { return !up.stream_close_codes.empty(); }, Millis(2000)));
  ASSERT_EQ(up.stream_close_codes.size(), 1u);
  EXPECT_EQ(up.stream_close_codes[0], static_cast<uint32_t>(NGHTTP2_CANCEL));
  EXPECT_TRUE(up.done.empty());
  ASSERT_TRUE(logged(1));
  EXPECT_EQ(log[0].flags, "SI");
  EXPECT_EQ(log[0].status, 408);
  EXPECT_EQ(idleTimeouts(), 1);
}

// The response started, then the upstream went quiet: too late for a 408,
// the stream is reset (HTTP/1.1: the connection is closed).
TEST_F(StreamIdleTest, AResponseThatStallsIsResetOverHttp1) {
  idleTimeout(kIdle);
  auto& up = trickleServer(1000, Millis(0));
  setUp(routeTo({dest("web")}));
  auto c = client();
  c->get("/stall");
  EXPECT_TRUE(runUntil(
      loop, [&] { return c->closed; }, Millis(3000)));
  EXPECT_TRUE(c->responses.empty());  // 1 of 1000 bytes, then the reset
  EXPECT_TRUE(runUntil(
      loop, [&] { return up.openConns() == 0; }, Millis(2000)));
  ASSERT_TRUE(logged(1));
  EXPECT_EQ(log[0].status, 200);  // what the client was sent
  EXPECT_EQ(log[0].flags, "SI");
  EXPECT_EQ(idleTimeouts(), 1);
}

TEST_F(StreamIdleTest, AResponseThatStallsIsResetOverHttp2AndTheConnectionGoesOn) {
  idleTimeout(kIdle);
  trickleServer(1000, Millis(0));
  setUp(routeTo({dest("web")}));
  H2Client c(loop, h2down.port());
  int32_t id = c.open("GET", "/stall", true);
  ASSERT_TRUE(runUntil(
      loop, [&] { return c.streams[id].closed; }, Millis(3000)));
  EXPECT_EQ(c.streams[id].status, 200);
  EXPECT_FALSE(c.streams[id].response_ended);
  EXPECT_TRUE(c.streams[id].reset);
  EXPECT_NE(c.streams[id].reset_code, static_cast<uint32_t>(NGHTTP2_NO_ERROR));
  EXPECT_FALSE(c.closed);
  EXPECT_FALSE(c.goaway);
  ASSERT_TRUE(logged(1));
  EXPECT_EQ(log[0].flags, "SI");
}

// Slow is not idle: a body trickling in, and a response trickling out, each
// byte well within the timeout, run for several timeouts and complete.
TEST_F(StreamIdleTest, SlowButActiveStreamsAreNotCut) {
  idleTimeout(Millis(300));
  auto& up = server("10.1.0.1", 8080, "web");
  setUp(routeTo({dest("web")}));
  auto c = client();
  const size_t pieces = 12;
  c->send(post(pieces * 100));
  for (size_t i = 0; i < pieces; ++i) {
    runUntil(
        loop, [] { return false; }, Millis(100));
    c->send(std::string(100, 'b'));
  }
  ASSERT_TRUE(c->waitFor(1, Millis(3000)));
  EXPECT_EQ(c->responses[0].status, 200);
  ASSERT_EQ(up.bodies.size(), 1u);
  EXPECT_EQ(up.bodies[0].size, pieces * 100);

  // 1.2 s of response, a byte per 100 ms, from another endpoint (not the pooled connection).
  trickle = std::make_unique<TrickleServer>(loop, 12, Millis(100));
  connector.map["10.1.0.2:8080"] = trickle->port();
  Snapshot s;
  s.services = {service("web", "10.96.0.10", {endpoint("10.1.0.2", 8080)})};
  apply(s);
  auto c2 = client();
  auto r = c2->request("/trickle");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, std::string(12, 'x'));
  ASSERT_TRUE(logged(2));
  EXPECT_EQ(log[0].flags, "");
  EXPECT_EQ(log[1].flags, "");
  EXPECT_EQ(idleTimeouts(), 0);
}

// Envoy's RouteAction.idle_timeout overrides the connection manager's
// stream_idle_timeout either way (0 switches it off); the Service port's
// value (the listener's HttpConnectionManager, from xDS) overrides the
// proxy's default.
TEST_F(StreamIdleTest, TheRouteIdleTimeoutOverridesTheDefault) {
  server("10.1.0.1", 8080, "web");
  HttpRoute short_idle = routeTo({dest("web")});
  short_idle.idle_timeout = kIdle;
  idleTimeout(Millis(0));  // none by default
  setUp(short_idle);
  auto c = client();
  c->send(post(100) + "half");
  ASSERT_TRUE(c->waitFor(1, Millis(3000)));
  EXPECT_EQ(c->responses[0].status, 408);

  HttpRoute no_idle = routeTo({dest("web")});
  no_idle.idle_timeout = Millis(0);
  c.reset();
  idleTimeout(kIdle);
  setUp(no_idle);
  auto c2 = client();
  c2->send(post(8) + "half");
  runUntil(
      loop, [] { return false; }, 3 * kIdle);
  EXPECT_TRUE(c2->responses.empty());  // the route switched it off
  c2->send("rest");
  ASSERT_TRUE(c2->waitFor(1, Millis(3000)));
  EXPECT_EQ(c2->responses[0].status, 200);

  c2.reset();
  idleTimeout(Millis(0));
  setUp(routeTo({dest("web")}), "http", kIdle);  // the listener's stream_idle_timeout
  auto c3 = client();
  c3->send(post(100) + "half");
  ASSERT_TRUE(c3->waitFor(1, Millis(3000)));
  EXPECT_EQ(c3->responses[0].status, 408);
  ASSERT_TRUE(logged(3));
  EXPECT_EQ(log[0].flags, "SI");
  EXPECT_EQ(log[1].flags, "");
  EXPECT_EQ(log[2].flags, "SI");
}

// RFC 9113 8.1: a response complete before its request ends the stream with
// RST_STREAM(NO_ERROR) after the whole response. The DATA the client had in
// flight is dropped and its connection window credited: 80 early answers to
// 240 KiB bodies (more than the 16 MiB connection window) and the
// connection still carries a 1 MiB upload.
TEST_F(StreamIdleTest, AnEarlyHttp2ResponseEndsWithRstStreamNoErrorAndTheConnectionGoesOn) {
  auto& up = server("10.1.0.1", 8080, "web");
  HttpRoute early = routeTo({dest("web")});
  HttpMatch m;
  m.uri = StringMatch{StringMatch::Kind::kExact, "/early"};
  early.match = {m};
  early.fault_abort = FaultAbort{100, 418};
  Snapshot s;
  s.services = {service("web", "10.96.0.10", {endpoint("10.1.0.1", 8080)})};
  VirtualService vs;
  vs.name = "web";
  vs.hosts = {"web"};
  vs.http = {early, routeTo({dest("web")})};
  s.config.virtual_services = {vs};
  apply(s);
  H2Client c(loop, h2down.port());
  ASSERT_TRUE(c.connected());
  const std::string chunk(240 << 10, 'c');
  for (int i = 0; i < 80; ++i) {
    int32_t id = c.open("POST", "/early", false);
    c.send(id, chunk, false);  // never ended by the client
    ASSERT_TRUE(runUntil(
        loop, [&] { return c.streams[id].closed; }, Millis(3000)))
        << "stream " << id << " was not closed";
    const auto& st = c.streams[id];
    ASSERT_EQ(st.status, 418);
    ASSERT_TRUE(st.response_ended);
    ASSERT_TRUE(st.reset);
    ASSERT_EQ(st.reset_code, static_cast<uint32_t>(NGHTTP2_NO_ERROR));
    ASSERT_TRUE(st.reset_after_end);
  }
  int32_t id = c.open("POST", "/up", false);
  c.send(id, std::string(1 << 20, 'u'), true);
  ASSERT_TRUE(runUntil(
      loop, [&] { return c.streams[id].closed; }, Millis(5000)));
  EXPECT_EQ(c.streams[id].status, 200);
  EXPECT_FALSE(c.streams[id].reset);  // a request that ended gets no RST
  ASSERT_EQ(up.bodies.size(), 1u);
  EXPECT_EQ(up.bodies[0].size, 1u << 20);
  EXPECT_FALSE(c.closed);
}

}  // namespace
}  // namespace offcore::mesh::l7::testing
