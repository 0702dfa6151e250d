// A scripted HTTP/2 (h2c, prior knowledge) client for the L7 proxy tests,
// on the test's EventLoop (nghttp2 client session): a test opens streams,
// sends body bytes when it chooses (or never), and reads back each stream's
// response, its RST_STREAM code and whether that came after the whole
// response. nghttp (the CLI) cannot stop halfway through a body.
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "proxy_fixture.h"

namespace offcore::mesh::l7::testing {

class H2Client : public Transport::Callbacks {
 public:
  struct Stream {
    int status = 0;
    std::string body;
    bool response_ended = false;  // END_STREAM from the proxy
    bool reset = false;           // RST_STREAM from the proxy
    uint32_t reset_code = 0;
    bool reset_after_end = false;  // that RST came after the whole response
    bool closed = false;
    // Request body not yet taken by nghttp2.
    std::string pending;
    bool eof = false;
    bool deferred = false;
  };

  H2Client(EventLoop& loop, uint16_t port) : connector_(loop) {
    ConnectTarget target;
    target.ip = "127.0.0.1";
    target.port = port;
    bool done = false;
    connector_.connect(target, Millis(2000), [&](Result<std::unique_ptr<Transport>> r) {
      done = true;
      if (r.ok()) t_ = std::move(*r);
    });
    runUntil(loop, [&] { return done; });
    if (!t_) return;
    t_->setCallbacks(this);
    nghttp2_session_callbacks* cbs = nullptr;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_header_callback(cbs, &H2Client::header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &H2Client::data);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &H2Client::frame);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &H2Client::streamClose);
    nghttp2_session_client_new(&session_, cbs, this);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, nullptr, 0);
    flush();
  }
  ~H2Client() override {
    if (t_) t_->setCallbacks(nullptr);
    if (session_) nghttp2_session_del(session_);
  }
  bool connected() const { return session_ != nullptr; }

  // Opens a stream; with end_stream the request has no body, else its
  // body follows through send().
  int32_t open(const std::string& method, const std::string& path, bool end_stream,
               std::optional<uint64_t> content_length = std::nullopt, const std::string& authority = "web") {
    std::vector<std::pair<std::string, std::string>> kv = {
        {":method", method}, {":scheme", "http"}, {":path", path}, {":authority", authority}};
    if (content_length) kv.emplace_back("content-length", std::to_string(*content_length));
    std::vector<nghttp2_nv> nva;
    for (auto& [k, v] : kv)
      nva.push_back({reinterpret_cast<uint8_t*>(k.data()), reinterpret_cast<uint8_t*>(v.data()), k.size(), v.size(),
                     NGHTTP2_NV_FLAG_NONE});
    nghttp2_data_provider prd{};
    prd.read_callback = &H2Client::read;
    int32_t id = nghttp2_submit_request(session_, nullptr, nva.data(), nva.size(), end_stream ? nullptr : &prd, this);
    if (id > 0) streams[id];
    flush();
    return id;
  }
  // More request body for stream id (end: the last of it).
  void send(int32_t id, std::string_view bytes, bool end) {
    Stream& s = streams[id];
    s.pending.append(bytes);
    s.eof = s.eof || end;
    if (s.deferred) {
      s.deferred = false;
      nghttp2_session_resume_data(session_, id);
    }
    flush();
  }
  // Request bytes nghttp2 has not sent yet on stream id.
  size_t unsent(int32_t id) { return streams[id].pending.size(); }

  std::map<int32_t, Stream> streams;
  bool closed = false;  // the connection
  bool goaway = false;

  void onData(std::string_view b) override {
    if (closed) return;
    if (nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(b.data()), b.size()) < 0) {
      closed = true;
      return;
    }
    flush();
  }
  void onEnd() override { closed = true; }
  void onClosed(const Status&) override { closed = true; }
  void onDrained() override { flush(); }

 private:
  void flush() {
    if (!t_ || closed) return;
    const uint8_t* d = nullptr;
    ssize_t n;
    while ((n = nghttp2_session_mem_send(session_, &d)) > 0)
      t_->write(std::string_view(reinterpret_cast<const char*>(d), static_cast<size_t>(n)));
  }
  static H2Client* self(void* u) { return static_cast<H2Client*>(u); }
  static ssize_t read(nghttp2_session*, int32_t id, uint8_t* buf, size_t length, uint32_t* flags, nghttp2_data_source*,
                      void* u) {
    Stream& s = self(u)->streams[id];
    if (s.pending.empty() && !s.eof) {
      s.deferred = true;
      return NGHTTP2_ERR_DEFERRED;
    }
    size_t n = std::min(length, s.pending.size());
    std::memcpy(buf, s.pending.data(), n);
    s.pending.erase(0, n);
    if (s.pending.empty() && s.eof) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<ssize_t>(n);
  }
  static int header(nghttp2_session*, const nghttp2_frame* f, const uint8_t* n, size_t nl, const uint8_t* v, size_t vl,
                    uint8_t, void* u) {
    if (std::string_view(reinterpret_cast<const char*>(n), nl) == ":status")
      self(u)->streams[f->hd.stream_id].status = std::atoi(std::string(reinterpret_cast<const char*>(v), vl).c_str());
    return 0;
  }
  static int data(nghttp2_session*, uint8_t, int32_t id, const uint8_t* d, size_t len, void* u) {
    self(u)->streams[id].body.append(reinterpret_cast<const char*>(d), len);
    return 0;
  }
  static int frame(nghttp2_session*, const nghttp2_frame* f, void* u) {
    if (f->hd.type == NGHTTP2_GOAWAY) self(u)->goaway = true;
    if (f->hd.stream_id == 0) return 0;
    Stream& s = self(u)->streams[f->hd.stream_id];
    if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) && (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
      s.response_ended = true;
    if (f->hd.type == NGHTTP2_RST_STREAM) {
      s.reset = true;
      s.reset_code = f->rst_stream.error_code;
      s.reset_after_end = s.response_ended;
    }
    return 0;
  }
  static int streamClose(nghttp2_session*, int32_t id, uint32_t, void* u) {
    self(u)->streams[id].closed = true;
    return 0;
  }

  TcpConnector connector_;
  std::unique_ptr<Transport> t_;
  nghttp2_session* session_ = nullptr;
};

}  // namespace offcore::mesh::l7::testing
