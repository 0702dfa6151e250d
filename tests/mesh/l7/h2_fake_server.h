// An HTTP/2 (h2c, prior knowledge) upstream for the L7 proxy tests, on the
// test's EventLoop over 127.0.0.1 (nghttp2 server): records each request
// stream's head, body (size and hash) and trailers, and answers 200 "ok"
// once the request has ended.
#pragma once

#include <nghttp2/nghttp2.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "proxy_fixture.h"

namespace offcore::mesh::l7::testing {

class FakeH2Server {
 public:
  struct Request {
    http::Headers headers;  // pseudo-headers included
    ReceivedBody body;
    bool trailers_seen = false;
  };

  explicit FakeH2Server(EventLoop& loop) {
    auto l = TcpListener::listen(loop, "127.0.0.1", 0, {}, [this](std::unique_ptr<Transport> t) {
      conns_.push_back(std::make_unique<Conn>(this, std::move(t)));
    });
    EXPECT_TRUE(l.ok());
    listener_ = std::move(*l);
  }
  uint16_t port() const { return listener_->port(); }
  std::vector<Request> done;                 // complete requests, in order
  std::vector<uint32_t> stream_close_codes;  // each closed stream's error code (NGHTTP2_CANCEL: the proxy reset it)

 private:
  struct Conn : Transport::Callbacks {
    Conn(FakeH2Server* server, std::unique_ptr<Transport> transport) : server(server), t(std::move(transport)) {
      nghttp2_session_callbacks* cbs = nullptr;
      nghttp2_session_callbacks_new(&cbs);
      nghttp2_session_callbacks_set_on_header_callback(cbs, &Conn::header);
      nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &Conn::data);
      nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &Conn::frame);
      nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &Conn::streamClose);
      nghttp2_session_server_new(&session, cbs, this);
      nghttp2_session_callbacks_del(cbs);
      nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, nullptr, 0);
      t->setCallbacks(this);
      flush();
    }
    ~Conn() override {
      t->setCallbacks(nullptr);
      nghttp2_session_del(session);
    }
    static int header(nghttp2_session*, const nghttp2_frame* f, const uint8_t* n, size_t nl, const uint8_t* v,
                      size_t vl, uint8_t, void* u) {
      auto* c = static_cast<Conn*>(u);
      Request& r = c->streams[f->hd.stream_id];
      std::string k(reinterpret_cast<const char*>(n), nl), val(reinterpret_cast<const char*>(v), vl);
      if (f->headers.cat == NGHTTP2_HCAT_HEADERS) {
        r.trailers_seen = true;
        r.body.trailers.emplace_back(std::move(k), std::move(val));
      } else {
        r.headers.emplace_back(std::move(k), std::move(val));
      }
      return 0;
    }
    static int data(nghttp2_session*, uint8_t, int32_t id, const uint8_t* d, size_t len, void* u) {
      Request& r = static_cast<Conn*>(u)->streams[id];
      std::string_view b(reinterpret_cast<const char*>(d), len);
      r.body.size += len;
      r.body.hash = fnv(r.body.hash, b);
      return 0;
    }
    static int frame(nghttp2_session* s, const nghttp2_frame* f, void* u) {
      auto* c = static_cast<Conn*>(u);
      if ((f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) || !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
      c->server->done.push_back(c->streams[f->hd.stream_id]);
      static std::string st = ":status", ok = "200", cl = "content-length", two = "2";
      nghttp2_nv nva[] = {{reinterpret_cast<uint8_t*>(st.data()), reinterpret_cast<uint8_t*>(ok.data()), st.size(),
                           ok.size(), NGHTTP2_NV_FLAG_NONE},
                          {reinterpret_cast<uint8_t*>(cl.data()), reinterpret_cast<uint8_t*>(two.data()), cl.size(),
                           two.size(), NGHTTP2_NV_FLAG_NONE}};
      nghttp2_data_provider prd{};
      prd.read_callback = [](nghttp2_session*, int32_t, uint8_t* buf, size_t, uint32_t* flags, nghttp2_data_source*,
                             void*) -> ssize_t {
        buf[0] = 'o';
        buf[1] = 'k';
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        return 2;
      };
      nghttp2_submit_response(s, f->hd.stream_id, nva, 2, &prd);
      return 0;
    }
    static int streamClose(nghttp2_session*, int32_t, uint32_t code, void* u) {
      static_cast<Conn*>(u)->server->stream_close_codes.push_back(code);
      return 0;
    }
    void flush() {
      const uint8_t* d = nullptr;
      ssize_t n;
      while ((n = nghttp2_session_mem_send(session, &d)) > 0)
        t->write(std::string_view(reinterpret_cast<const char*>(d), static_cast<size_t>(n)));
    }
    void onData(std::string_view b) override {
      if (closed) return;
      if (nghttp2_session_mem_recv(session, reinterpret_cast<const uint8_t*>(b.data()), b.size()) < 0) {
        closed = true;
        t->reset();
        return;
      }
      flush();
    }
    void onEnd() override { t->endWrite(); }
    void onClosed(const Status&) override { closed = true; }

    FakeH2Server* server;
    std::unique_ptr<Transport> t;
    nghttp2_session* session = nullptr;
    std::map<int32_t, Request> streams;
    bool closed = false;
  };

  std::unique_ptr<TcpListener> listener_;
  std::vector<std::unique_ptr<Conn>> conns_;
};

}  // namespace offcore::mesh::l7::testing
