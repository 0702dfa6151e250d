// H2Conn (the HTTP/2 upstream) against an in-process nghttp2 server over a
// fake transport: multiplexed streams, trailers, flow control held by the
// exchange, REFUSED_STREAM and GOAWAY reported as refused.
#include "mesh/l7/h2_upstream.h"

#include "mesh/l7/exchange.h"

#include <gtest/gtest.h>
#include <nghttp2/nghttp2.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "../loop_helpers.h"

namespace offcore::mesh::l7 {
namespace {

// The bytes the connection writes go to `out`; the test pumps them.
class PipeTransport : public Transport {
 public:
  std::string out;
  Callbacks* cb = nullptr;
  bool ended = false;
  void setCallbacks(Callbacks* c) override { cb = c; }
  void write(std::string_view b) override { out.append(b); }
  size_t pendingWrite() const override { return 0; }
  void pauseReading(bool) override {}
  void endWrite() override { ended = true; }
  void reset() override {}
  std::string localAddress() const override { return "127.0.0.1:1"; }
  std::string remoteAddress() const override { return "127.0.0.1:2"; }
};

// A small HTTP/2 server: answers each request stream with `status`, a body
// of `body_size` bytes and (optionally) grpc trailers, or refuses it.
struct Server {
  nghttp2_session* s = nullptr;
  std::map<int32_t, std::string> paths;
  std::vector<int32_t> requests;
  size_t body_size = 5;
  bool trailers = true;
  bool refuse = false;
  uint32_t max_streams = 100;
  struct Body {
    std::string data;
    size_t off = 0;
    bool trailers = false;
  };
  std::map<int32_t, Body> bodies;

  Server() {
    nghttp2_session_callbacks* cbs = nullptr;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_header_callback(
        cbs,
        [](nghttp2_session*, const nghttp2_frame* f, const uint8_t* n, size_t nl, const uint8_t* v, size_t vl, uint8_t,
           void* u) -> int {
          if (std::string(reinterpret_cast<const char*>(n), nl) == ":path")
            static_cast<Server*>(u)->paths[f->hd.stream_id] = std::string(reinterpret_cast<const char*>(v), vl);
          return 0;
        });
    nghttp2_session_callbacks_set_on_frame_recv_callback(
        cbs, [](nghttp2_session*, const nghttp2_frame* f, void* u) -> int {
          if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) && (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
            static_cast<Server*>(u)->requests.push_back(f->hd.stream_id);
          return 0;
        });
    nghttp2_session_server_new(&s, cbs, this);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, max_streams}};
    nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, iv, 1);
  }
  ~Server() { nghttp2_session_del(s); }

  void answer(int32_t id) {
    if (refuse) {
      nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, id, NGHTTP2_REFUSED_STREAM);
      return;
    }
    Body& b = bodies[id];
    b.data.assign(body_size, 'x');
    b.trailers = trailers;
    static std::string st = ":status", ok = "200", ct = "content-type", grpc = "application/grpc";
    nghttp2_nv nva[] = {{reinterpret_cast<uint8_t*>(st.data()), reinterpret_cast<uint8_t*>(ok.data()), st.size(),
                         ok.size(), NGHTTP2_NV_FLAG_NONE},
                        {reinterpret_cast<uint8_t*>(ct.data()), reinterpret_cast<uint8_t*>(grpc.data()), ct.size(),
                         grpc.size(), NGHTTP2_NV_FLAG_NONE}};
    nghttp2_data_provider prd{};
    prd.source.ptr = &b;
    prd.read_callback = [](nghttp2_session* session, int32_t sid, uint8_t* buf, size_t len, uint32_t* flags,
                           nghttp2_data_source* src, void*) -> ssize_t {
      auto* body = static_cast<Body*>(src->ptr);
      size_t n = std::min(len, body->data.size() - body->off);
      std::memcpy(buf, body->data.data() + body->off, n);
      body->off += n;
      if (body->off == body->data.size()) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (body->trailers) {
          *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
          static std::string k = "grpc-status", v = "0";
          nghttp2_nv t[] = {{reinterpret_cast<uint8_t*>(k.data()), reinterpret_cast<uint8_t*>(v.data()), k.size(),
                             v.size(), NGHTTP2_NV_FLAG_NONE}};
          nghttp2_submit_trailer(session, sid, t, 1);
        }
      }
      return static_cast<ssize_t>(n);
    };
    nghttp2_submit_response(s, id, nva, 2, &prd);
  }
};

struct Handler : H2StreamHandler {
  int status = 0;
  bool end_at_head = false;
  std::string body;
  http::Headers trailers;
  bool ended = false, reset = false, refused = false;
  void onH2Head(http::MessageHead&& h, bool end) override {
    status = h.status;
    end_at_head = end;
  }
  void onH2Data(std::string_view b) override { body.append(b); }
  void onH2Trailers(http::Headers&& t) override { trailers = std::move(t); }
  void onH2End() override { ended = true; }
  void onH2Reset(bool r, const std::string&) override {
    reset = true;
    refused = r;
  }
};

class H2UpstreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(loop.init().ok());
    auto t = std::make_unique<PipeTransport>();
    pipe = t.get();
    conn = std::make_unique<H2Conn>(loop, std::make_unique<UpstreamConn>(std::move(t), nullptr), 0,
                                    [this](H2Conn*) { gone = true; });
  }
  // Moves bytes both ways (and runs posted flushes) until nothing moves.
  void pump(bool answer = true) {
    for (int i = 0; i < 50; ++i) {
      mesh::testing::runUntil(
          loop, [] { return false; }, std::chrono::milliseconds(1));
      bool moved = false;
      if (!pipe->out.empty()) {
        std::string b = std::move(pipe->out);
        pipe->out.clear();
        ASSERT_GE(nghttp2_session_mem_recv(server.s, reinterpret_cast<const uint8_t*>(b.data()), b.size()), 0);
        moved = true;
      }
      if (answer) {
        for (int32_t id : server.requests) server.answer(id);
        server.requests.clear();
      }
      const uint8_t* data = nullptr;
      std::string back;
      for (ssize_t n; (n = nghttp2_session_mem_send(server.s, &data)) > 0;)
        back.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
      if (!back.empty() && !gone) {
        pipe->cb->onData(back);
        moved = true;
      }
      if (!moved && i > 2) return;
    }
  }
  http::MessageHead request(const std::string& path) {
    http::MessageHead h;
    h.method = "POST";
    h.target = h.path = path;
    h.headers = {{"host", "echo"}, {"content-type", "application/grpc"}, {"te", "trailers"}};
    return h;
  }

  EventLoop loop;
  Server server;
  PipeTransport* pipe = nullptr;
  std::unique_ptr<H2Conn> conn;
  bool gone = false;
};

TEST_F(H2UpstreamTest, ManyStreamsShareOneConnectionWithTrailers) {
  std::vector<Handler> h(10);
  for (auto& x : h) ASSERT_TRUE(conn->submit(request("/offcore.test.Echo/Echo"), "hello", &x).ok());
  EXPECT_EQ(conn->active(), 10u);
  EXPECT_EQ(conn->peakActive(), 10u);
  pump();
  for (auto& x : h) {
    EXPECT_EQ(x.status, 200);
    EXPECT_EQ(x.body, "xxxxx");
    ASSERT_EQ(x.trailers.size(), 1u);
    EXPECT_EQ(x.trailers[0].first, "grpc-status");
    EXPECT_TRUE(x.ended);
    EXPECT_FALSE(x.reset);
  }
  EXPECT_EQ(conn->active(), 0u);
  EXPECT_EQ(conn->started(), 10u);
  EXPECT_TRUE(conn->available());
}

TEST_F(H2UpstreamTest, ResponseWindowStaysClosedUntilConsumed) {
  server.body_size = 1 << 20;  // more than the 256 KiB stream window
  Handler h;
  auto id = conn->submit(request("/big"), "", &h);
  ASSERT_TRUE(id.ok());
  pump();
  EXPECT_EQ(h.body.size(), static_cast<size_t>(H2Conn::kStreamWindow));  // held at the window
  EXPECT_FALSE(h.ended);
  for (int i = 0; i < 10 && !h.ended; ++i) {
    conn->consume(*id, h.body.size());
    size_t before = h.body.size();
    pump();
    if (h.body.size() == before) break;
  }
  EXPECT_TRUE(h.ended);
  EXPECT_EQ(h.body.size(), 1u << 20);
}

TEST_F(H2UpstreamTest, RefusedStreamIsReportedAsRefused) {
  server.refuse = true;
  Handler h;
  ASSERT_TRUE(conn->submit(request("/x"), "", &h).ok());
  pump();
  EXPECT_TRUE(h.reset);
  EXPECT_TRUE(h.refused);
  EXPECT_TRUE(conn->available());  // one refused stream does not end the connection
}

TEST_F(H2UpstreamTest, GoawayRefusesLaterStreamsAndStopsNewOnes) {
  Handler first, second;
  ASSERT_TRUE(conn->submit(request("/1"), "", &first).ok());
  pump(false);  // the server has stream 1, no answer yet
  ASSERT_TRUE(conn->submit(request("/2"), "", &second).ok());
  // The server goes away having seen stream 1 only; stream 3 is in flight.
  nghttp2_submit_goaway(server.s, NGHTTP2_FLAG_NONE, 1, NGHTTP2_NO_ERROR, nullptr, 0);
  std::string b;
  const uint8_t* data = nullptr;
  for (ssize_t n; (n = nghttp2_session_mem_send(server.s, &data)) > 0;)
    b.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
  pipe->cb->onData(b);
  EXPECT_FALSE(conn->available());
  EXPECT_TRUE(second.reset);
  EXPECT_TRUE(second.refused);
  EXPECT_FALSE(first.reset);
  pump();  // the server answers stream 1, which it took before going away
  EXPECT_TRUE(first.ended);
  EXPECT_EQ(first.status, 200);
  pump();
  EXPECT_TRUE(gone);  // drained: the connection goes
}

TEST_F(H2UpstreamTest, ClosedConnectionResetsOpenStreams) {
  Handler h;
  ASSERT_TRUE(conn->submit(request("/x"), "", &h).ok());
  pump(false);
  pipe->cb->onClosed(okStatus());
  EXPECT_TRUE(h.reset);
  EXPECT_FALSE(h.refused);
  EXPECT_TRUE(gone);
  EXPECT_FALSE(conn->available());
}

TEST_F(H2UpstreamTest, CancelledStreamCallsNothingMore) {
  Handler a, b;
  auto ia = conn->submit(request("/a"), "", &a);
  ASSERT_TRUE(conn->submit(request("/b"), "", &b).ok());
  ASSERT_TRUE(ia.ok());
  conn->cancel(*ia);
  pump();
  EXPECT_EQ(a.status, 0);
  EXPECT_FALSE(a.ended || a.reset);
  EXPECT_TRUE(b.ended);
}

TEST_F(H2UpstreamTest, MaxRequestsPerConnectionDrainsIt) {
  auto t = std::make_unique<PipeTransport>();
  pipe = t.get();
  gone = false;
  conn = std::make_unique<H2Conn>(loop, std::make_unique<UpstreamConn>(std::move(t), nullptr), 2,
                                  [this](H2Conn*) { gone = true; });
  Handler a, b;
  ASSERT_TRUE(conn->submit(request("/a"), "", &a).ok());
  EXPECT_TRUE(conn->available());
  ASSERT_TRUE(conn->submit(request("/b"), "", &b).ok());
  EXPECT_FALSE(conn->available());
  pump();
  EXPECT_TRUE(a.ended && b.ended);
  EXPECT_TRUE(gone);
}

TEST(GrpcStatus, LocalRepliesMapLikeEnvoy) {
  EXPECT_EQ(grpcStatusForHttp(503), 14);
  EXPECT_EQ(grpcStatusForHttp(429), 14);
  EXPECT_EQ(grpcStatusForHttp(403), 7);
  EXPECT_EQ(grpcStatusForHttp(404), 12);
  EXPECT_EQ(grpcStatusForHttp(504), 4);
  EXPECT_EQ(grpcStatusForHttp(418), 2);
}

}  // namespace
}  // namespace offcore::mesh::l7
