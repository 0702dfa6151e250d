#include "mesh/l7/h2_upstream.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstring>
#include <utility>

namespace offcore::mesh::l7 {

namespace {
constexpr size_t kWriteHigh = 1 << 20;  // stop producing frames above this much unsent

nghttp2_nv nv(const std::string& k, const std::string& v) {
  return {reinterpret_cast<uint8_t*>(const_cast<char*>(k.data())),
          reinterpret_cast<uint8_t*>(const_cast<char*>(v.data())), k.size(), v.size(), NGHTTP2_NV_FLAG_NONE};
}
}  // namespace

struct H2Conn::Stream {
  int32_t id = 0;
  H2StreamHandler* handler = nullptr;
  std::string body;  // submit(): the whole body; submitStreaming(): the handler reads it
  size_t body_off = 0;
  bool streaming = false;
  bool deferred = false;      // readBody had nothing: waits for resumeBody
  bool request_done = false;  // our END_STREAM went out (or is about to)
  http::MessageHead head;     // the response head being received
  bool head_done = false;
  http::Headers trailers;
  bool ended = false;
};

struct H2Conn::Callbacks {
  static H2Conn* self(void* p) { return static_cast<H2Conn*>(p); }
  static Stream* stream(void* u, int32_t id) {
    auto it = self(u)->streams_.find(id);
    return it == self(u)->streams_.end() ? nullptr : it->second.get();
  }
  static int beginHeaders(nghttp2_session*, const nghttp2_frame* f, void* u) {
    Stream* st = stream(u, f->hd.stream_id);
    if (st && f->headers.cat == NGHTTP2_HCAT_RESPONSE) st->head = http::MessageHead{};
    return 0;
  }
  static int header(nghttp2_session*, const nghttp2_frame* f, const uint8_t* name, size_t nlen, const uint8_t* value,
                    size_t vlen, uint8_t, void* u) {
    Stream* st = stream(u, f->hd.stream_id);
    if (!st) return 0;
    std::string k(reinterpret_cast<const char*>(name), nlen), v(reinterpret_cast<const char*>(value), vlen);
    if (st->head_done) {  // trailers
      if (k[0] != ':') st->trailers.emplace_back(std::move(k), std::move(v));
      return 0;
    }
    if (k == ":status") {
      st->head.status = std::atoi(v.c_str());
    } else if (k == "content-length") {
      st->head.content_length = std::strtoull(v.c_str(), nullptr, 10);
    } else if (k[0] != ':') {
      st->head.headers.emplace_back(std::move(k), std::move(v));
    }
    return 0;
  }
  static int frameRecv(nghttp2_session*, const nghttp2_frame* f, void* u) {
    H2Conn* c = self(u);
    if (f->hd.type == NGHTTP2_GOAWAY) {
      c->goaway_ = true;  // nghttp2 closes the streams above last_stream_id as refused
      return 0;
    }
    Stream* st = stream(u, f->hd.stream_id);
    if (!st) return 0;
    bool end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (f->hd.type == NGHTTP2_HEADERS) {
      if (!st->head_done) {
        if (st->head.status / 100 == 1) {  // informational: the final head follows
          st->head = http::MessageHead{};
          return 0;
        }
        st->head_done = true;
        st->head.reason = http::reasonPhrase(st->head.status);
        if (!st->head.content_length) st->head.chunked = !end;  // unframed for an HTTP/1.1 client
        http::MessageHead h = std::move(st->head);
        st->handler->onH2Head(std::move(h), end);
        if (!(st = stream(u, f->hd.stream_id))) return 0;  // cancelled meanwhile
      } else {
        st->handler->onH2Trailers(std::move(st->trailers));
        if (!(st = stream(u, f->hd.stream_id))) return 0;
      }
    }
    if (end && (f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA)) st->ended = true;
    if (st->ended && !st->request_done) c->earlyEnd(f->hd.stream_id);
    return 0;
  }
  static int dataChunk(nghttp2_session* s, uint8_t, int32_t id, const uint8_t* data, size_t len, void* u) {
    Stream* st = stream(u, id);
    if (!st) {
      nghttp2_session_consume(s, id, len);  // a cancelled stream: nobody holds these bytes
      return 0;
    }
    st->handler->onH2Data(std::string_view(reinterpret_cast<const char*>(data), len));
    return 0;
  }
  // The DATA source of a request stream: the whole body, or the handler's stream.
  static ssize_t readBody(nghttp2_session* session, int32_t id, uint8_t* buf, size_t length, uint32_t* flags,
                          nghttp2_data_source* source, void*) {
    auto* s = static_cast<Stream*>(source->ptr);
    size_t n = 0;
    bool eof = false;
    if (!s->streaming) {
      n = std::min(length, s->body.size() - s->body_off);
      std::memcpy(buf, s->body.data() + s->body_off, n);
      s->body_off += n;
      eof = s->body_off == s->body.size();
    } else if (s->handler) {
      n = s->handler->readBody(buf, length, eof);
    }
    if (n == 0 && !eof) {  // nothing yet (or cancelled: the RST_STREAM is on its way)
      s->deferred = true;
      return NGHTTP2_ERR_DEFERRED;
    }
    if (!eof) return static_cast<ssize_t>(n);
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    s->request_done = true;
    std::string().swap(s->body);
    s->body_off = 0;
    http::Headers trailers = s->streaming && s->handler ? s->handler->requestTrailers() : http::Headers{};
    if (!trailers.empty()) {  // the stream ends with the trailers' HEADERS (nghttp2 copies them)
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      std::vector<nghttp2_nv> nva;
      for (const auto& [k, v] : trailers) nva.push_back(nv(k, v));
      nghttp2_submit_trailer(session, id, nva.data(), nva.size());
    }
    return static_cast<ssize_t>(n);
  }
  static int streamClose(nghttp2_session*, int32_t id, uint32_t code, void* u) {
    H2Conn* c = self(u);
    auto it = c->streams_.find(id);
    if (it == c->streams_.end()) return 0;
    std::unique_ptr<Stream> st = std::move(it->second);
    c->streams_.erase(it);
    if (st->ended && code == NGHTTP2_NO_ERROR)
      st->handler->onH2End();
    else
      st->handler->onH2Reset(code == NGHTTP2_REFUSED_STREAM,
                             std::string("stream reset by upstream: ") + nghttp2_http2_strerror(code));
    c->checkDone();
    return 0;
  }
  static int notSent(nghttp2_session*, const nghttp2_frame* f, int err, void* u) {
    if (f->hd.type != NGHTTP2_HEADERS) return 0;
    H2Conn* c = self(u);
    auto it = c->streams_.find(f->hd.stream_id);
    if (it == c->streams_.end()) return 0;
    std::unique_ptr<Stream> st = std::move(it->second);
    c->streams_.erase(it);
    // Never sent (GOAWAY came first, or the connection is closing): not processed.
    st->handler->onH2Reset(true, std::string("request not sent upstream: ") + nghttp2_strerror(err));
    c->checkDone();
    return 0;
  }
};

H2Conn::H2Conn(EventLoop& loop, std::unique_ptr<UpstreamConn> conn, uint32_t max_requests,
               std::function<void(H2Conn*)> on_gone)
    : loop_(loop), conn_(std::move(conn)), max_requests_(max_requests), on_gone_(std::move(on_gone)) {
  nghttp2_session_callbacks* cbs = nullptr;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, &Callbacks::beginHeaders);
  nghttp2_session_callbacks_set_on_header_callback(cbs, &Callbacks::header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &Callbacks::frameRecv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &Callbacks::dataChunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &Callbacks::streamClose);
  nghttp2_session_callbacks_set_on_frame_not_send_callback(cbs, &Callbacks::notSent);
  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_session_client_new2(&session_, cbs, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);
  nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
                                 {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, kStreamWindow},
                                 {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 60 << 10}};
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, iv, 3);
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, kConnWindow);
  conn_->transport().setCallbacks(this);
  conn_->transport().pauseReading(false);
  flush();
}

H2Conn::~H2Conn() {
  *alive_ = false;
  if (conn_) conn_->transport().setCallbacks(nullptr);
  if (session_) nghttp2_session_del(session_);
}

bool H2Conn::available() const {
  if (gone_ || goaway_ || !conn_) return false;
  if (max_requests_ && started_ >= max_requests_) return false;
  uint32_t peer = nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
  return streams_.size() < std::min(peer, kMaxStreamsCap);
}

Result<int32_t> H2Conn::submit(const http::MessageHead& head, const std::string& body, H2StreamHandler* handler) {
  auto st = std::make_unique<Stream>();
  st->handler = handler;
  st->body = body;
  std::optional<uint64_t> length;
  if (head.content_length || !body.empty()) length = body.size();
  return start(head, length, !body.empty(), std::move(st));
}

Result<int32_t> H2Conn::submitStreaming(const http::MessageHead& head, std::optional<uint64_t> content_length,
                                        bool has_body, H2StreamHandler* handler) {
  auto st = std::make_unique<Stream>();
  st->handler = handler;
  st->streaming = true;
  return start(head, content_length, has_body, std::move(st));
}

Result<int32_t> H2Conn::start(const http::MessageHead& head, std::optional<uint64_t> content_length, bool has_body,
                              std::unique_ptr<Stream> st) {
  if (gone_ || !conn_) return makeError("the upstream HTTP/2 connection is closed; retry on a new one");
  std::vector<std::pair<std::string, std::string>> kv;
  const std::string* host = http::findHeader(head.headers, "host");
  kv.emplace_back(":method", head.method);
  kv.emplace_back(":scheme", "http");
  kv.emplace_back(":authority", host ? *host : "");
  kv.emplace_back(":path", head.target.empty() ? "/" : head.target);
  bool trailers = false;
  for (const auto& [k, v] : head.headers) {
    std::string name = http::lowerCase(k);
    if (name == "te") trailers = trailers || v.find("trailers") != std::string::npos;
    if (http::isHopByHop(name, head.headers) || name == "host" || name == "content-length") continue;
    kv.emplace_back(std::move(name), v);
  }
  if (trailers) kv.emplace_back("te", "trailers");  // the one TE value HTTP/2 allows (gRPC needs it)
  if (content_length) kv.emplace_back("content-length", std::to_string(*content_length));
  std::vector<nghttp2_nv> nva;
  nva.reserve(kv.size());
  for (const auto& [k, v] : kv) nva.push_back(nv(k, v));
  nghttp2_data_provider prd{};
  prd.source.ptr = st.get();
  prd.read_callback = &Callbacks::readBody;
  st->request_done = !has_body;
  int32_t id = nghttp2_submit_request(session_, nullptr, nva.data(), nva.size(), has_body ? &prd : nullptr, st.get());
  if (id < 0) return makeError(std::string("cannot start an HTTP/2 stream upstream: ") + nghttp2_strerror(id));
  st->id = id;
  streams_[id] = std::move(st);
  ++started_;
  peak_active_ = std::max(peak_active_, streams_.size());
  if (max_requests_ && started_ >= max_requests_) shutdown();
  scheduleFlush();
  return id;
}

void H2Conn::resumeBody(int32_t id) {
  auto it = streams_.find(id);
  if (it == streams_.end() || !it->second->deferred || !session_ || gone_) return;
  it->second->deferred = false;
  nghttp2_session_resume_data(session_, id);
  scheduleFlush();
}

// The response ended while our request body still had bytes to go: the
// exchange is over; tell the server we stop (RST_STREAM NO_ERROR).
void H2Conn::earlyEnd(int32_t id) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  std::shared_ptr<Stream> st(std::move(it->second));
  streams_.erase(it);
  nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_NO_ERROR);
  H2StreamHandler* h = std::exchange(st->handler, nullptr);
  loop_.post([st] {});  // nghttp2 may still ask its data source for bytes
  if (h) h->onH2End();
  checkDone();
}

void H2Conn::cancel(int32_t id) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  // The stream (and the body its data provider reads) goes from the loop:
  // nghttp2 may still ask for data before the RST_STREAM goes out.
  std::shared_ptr<Stream> later(std::move(it->second));
  streams_.erase(it);
  later->handler = nullptr;
  if (session_ && !gone_) {
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
    scheduleFlush();
  }
  loop_.post([later] {});
  checkDone();
}

void H2Conn::consume(int32_t id, size_t n) {
  if (!session_ || gone_ || n == 0) return;
  nghttp2_session_consume(session_, id, n);
  scheduleFlush();
}

void H2Conn::shutdown() {
  if (goaway_ || gone_) return;
  goaway_ = true;
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(session_),
                        NGHTTP2_NO_ERROR, nullptr, 0);
  scheduleFlush();
  checkDone();
}

void H2Conn::onData(std::string_view bytes) {
  if (gone_) return;
  std::weak_ptr<bool> weak = alive_;
  in_recv_ = true;
  ssize_t n = nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  if (weak.expired()) return;
  in_recv_ = false;
  if (n < 0) {
    flush();  // the GOAWAY nghttp2 queued
    failAll(std::string("bad HTTP/2 from upstream: ") + nghttp2_strerror(static_cast<int>(n)));
    return finish();
  }
  flush();
}

void H2Conn::onEnd() {
  failAll("upstream closed the HTTP/2 connection");
  finish();
}

void H2Conn::onClosed(const Status& why) {
  failAll(why.ok() ? "upstream closed the HTTP/2 connection" : "upstream: " + why.error().message);
  finish();
}

void H2Conn::onDrained() { flush(); }

void H2Conn::scheduleFlush() {
  if (in_recv_ || flush_posted_ || gone_) return;  // onData flushes after mem_recv
  flush_posted_ = true;
  std::weak_ptr<bool> weak = alive_;
  loop_.post([this, weak] {
    if (weak.expired()) return;
    flush_posted_ = false;
    flush();
  });
}

void H2Conn::flush() {
  if (gone_ || !conn_) return;
  Transport& t = conn_->transport();
  while (t.pendingWrite() < kWriteHigh) {
    const uint8_t* data = nullptr;
    ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n <= 0) break;
    t.write(std::string_view(reinterpret_cast<const char*>(data), static_cast<size_t>(n)));
  }
  if (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_)) {
    failAll("the HTTP/2 session with the upstream ended");
    finish();
  }
}

void H2Conn::failAll(const std::string& why) {
  // Handlers may cancel other streams: take them out first.
  std::map<int32_t, std::unique_ptr<Stream>> streams;
  streams.swap(streams_);
  for (auto& [id, st] : streams)
    if (st->handler) st->handler->onH2Reset(false, why);
  std::shared_ptr<std::map<int32_t, std::unique_ptr<Stream>>> later =
      std::make_shared<std::map<int32_t, std::unique_ptr<Stream>>>(std::move(streams));
  loop_.post([later] {});
}

void H2Conn::checkDone() {
  if (goaway_ && streams_.empty() && !gone_) {
    std::weak_ptr<bool> weak = alive_;
    loop_.post([this, weak] {  // after the GOAWAY / RST frames went out
      if (weak.expired() || gone_ || !streams_.empty()) return;
      if (conn_) conn_->transport().endWrite();
      finish();
    });
  }
}

void H2Conn::finish() {
  if (gone_) return;
  gone_ = true;
  if (conn_) conn_->transport().setCallbacks(nullptr);
  if (on_gone_) on_gone_(this);
}

}  // namespace offcore::mesh::l7
