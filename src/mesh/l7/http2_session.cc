#include "mesh/l7/http2_session.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "mesh/l7/exchange.h"
#include "mesh/route/policy.h"

namespace offcore::mesh::l7 {

namespace {
// Request flow control: a stream's window, and the connection's (shared by
// up to 100 streams).
constexpr int32_t kRequestStreamWindow = 256 << 10;
constexpr int32_t kRequestConnWindow = 16 << 20;
}  // namespace

bool looksLikeHttp2(std::string_view first) {
  size_t n = std::min(first.size(), kHttp2Preface.size());
  return n > 0 && first.substr(0, n) == kHttp2Preface.substr(0, n);
}

struct Http2Session::Stream : Exchange::Sink {
  Http2Session* s = nullptr;
  int32_t id = 0;
  http::MessageHead head;
  std::unique_ptr<Exchange> ex;
  std::string out;
  size_t out_off = 0;
  bool eof = false;
  bool deferred = false;
  std::vector<std::pair<std::string, std::string>> trailers;
  http::Headers request_trailers;
  size_t unconsumed = 0;  // request DATA bytes whose window is held back (the exchange is paused)

  void onResponseHead(http::MessageHead& h, bool no_body) override {
    std::vector<std::pair<std::string, std::string>> kv;
    kv.emplace_back(":status", std::to_string(h.status));
    for (auto& [k, v] : h.headers) {
      std::string name = k;
      std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
      if (http::isHopByHop(name, h.headers) || name == "content-length" || name == "host") continue;
      kv.emplace_back(std::move(name), v);
    }
    if (h.content_length && !no_body) kv.emplace_back("content-length", std::to_string(*h.content_length));
    std::vector<nghttp2_nv> nva;
    for (auto& [k, v] : kv)
      nva.push_back({reinterpret_cast<uint8_t*>(k.data()), reinterpret_cast<uint8_t*>(v.data()), k.size(), v.size(),
                     NGHTTP2_NV_FLAG_NONE});
    nghttp2_data_provider prd{};
    prd.source.ptr = this;
    prd.read_callback = [](nghttp2_session* session, int32_t, uint8_t* buf, size_t length, uint32_t* flags,
                           nghttp2_data_source* source, void*) -> ssize_t {
      auto* st = static_cast<Stream*>(source->ptr);
      size_t avail = st->out.size() - st->out_off;
      if (avail == 0 && !st->eof) {
        st->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
      }
      size_t n = std::min(avail, length);
      std::memcpy(buf, st->out.data() + st->out_off, n);
      st->out_off += n;
      if (n && st->ex) st->ex->touch();  // the client's window let response bytes go: not idle
      if (st->out_off == st->out.size()) {
        st->out.clear();
        st->out_off = 0;
        if (st->eof) *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (st->eof && !st->trailers.empty()) {  // the stream ends with the trailers' HEADERS
          *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
          std::vector<nghttp2_nv> nva;
          for (auto& [k, v] : st->trailers)
            nva.push_back({reinterpret_cast<uint8_t*>(k.data()), reinterpret_cast<uint8_t*>(v.data()), k.size(),
                           v.size(), NGHTTP2_NV_FLAG_NONE});
          nghttp2_submit_trailer(session, st->id, nva.data(), nva.size());
        }
      }
      return static_cast<ssize_t>(n);
    };
    nghttp2_submit_response(s->session_, id, nva.data(), nva.size(), no_body ? nullptr : &prd);
    s->scheduleFlush();
  }
  void resume() {
    if (deferred) {
      deferred = false;
      nghttp2_session_resume_data(s->session_, id);
    }
    s->scheduleFlush();
  }
  void onResponseBody(std::string_view bytes) override {
    out.append(bytes);
    resume();
  }
  void onResponseTrailers(const http::Headers& t) override {
    for (const auto& [k, v] : t) {
      std::string name = k;
      std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
      if (!http::isHopByHop(name, t)) trailers.emplace_back(std::move(name), v);
    }
  }
  void onResponseEnd() override {
    eof = true;
    resume();
  }
  void onResponseAbort() override {
    nghttp2_submit_rst_stream(s->session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_INTERNAL_ERROR);
    s->scheduleFlush();
  }
  void onExchangeDone(Exchange* x) override {
    if (ex.get() == x) destroyLater(s->ctx_.loop(), std::move(ex));
    onRequestDrained();  // what is left of the request is read and dropped
  }
  void onRequestDrained() override {
    if (unconsumed == 0) return;
    nghttp2_session_consume(s->session_, id, std::exchange(unconsumed, 0));
    s->scheduleFlush();
  }
  size_t responseBacklog() const override { return out.size() - out_off + (s->down_ ? s->down_->pendingWrite() : 0); }
};

// nghttp2's C callbacks.
struct Http2Session::Callbacks {
  static Http2Session* self(void* p) { return static_cast<Http2Session*>(p); }
  static int beginHeaders(nghttp2_session*, const nghttp2_frame* f, void* u) {
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    auto st = std::make_unique<Stream>();
    st->s = self(u);
    st->id = f->hd.stream_id;
    self(u)->streams_[st->id] = std::move(st);
    return 0;
  }
  static int header(nghttp2_session*, const nghttp2_frame* f, const uint8_t* name, size_t nlen, const uint8_t* value,
                    size_t vlen, uint8_t, void* u) {
    Stream* st = self(u)->stream(f->hd.stream_id);
    if (!st) return 0;
    std::string k(reinterpret_cast<const char*>(name), nlen), v(reinterpret_cast<const char*>(value), vlen);
    if (f->headers.cat == NGHTTP2_HCAT_HEADERS) {  // request trailers (nghttp2 refuses pseudo-headers there)
      st->request_trailers.emplace_back(std::move(k), std::move(v));
      return 0;
    }
    if (k == ":method")
      st->head.method = v;
    else if (k == ":path")
      st->head.target = v;
    else if (k == ":authority")
      st->head.headers.emplace_back("host", v);
    else if (k[0] != ':' && k != "host")
      st->head.headers.emplace_back(std::move(k), std::move(v));
    else if (k == "host" && !http::findHeader(st->head.headers, "host"))
      st->head.headers.emplace_back("host", v);
    return 0;
  }
  static int frameRecv(nghttp2_session*, const nghttp2_frame* f, void* u) {
    Stream* st = self(u)->stream(f->hd.stream_id);
    if (!st) return 0;
    bool end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
      st->head.path = st->head.target.substr(0, st->head.target.find_first_of("?#"));
      // nghttp2 checked content-length against the DATA received: it is the body's framing.
      if (const std::string* cl = http::findHeader(st->head.headers, "content-length")) {
        st->head.content_length = std::strtoull(cl->c_str(), nullptr, 10);
        http::removeHeader(st->head.headers, "content-length");
      }
      st->ex = std::make_unique<Exchange>(self(u)->ctx_, self(u)->info_, st);
      http::MessageHead h = st->head;
      st->ex->begin(std::move(h));
      // The request goes upstream now; its DATA streams behind it.
      if (!end) st->ex->dispatch();
    }
    if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) && end) self(u)->requestReady(*st);
    return 0;
  }
  // Flow control is ours: a DATA chunk's window is given back at once, or
  // once the exchange's body backlog went down (onRequestDrained).
  static int dataChunk(nghttp2_session* session, uint8_t, int32_t id, const uint8_t* data, size_t len, void* u) {
    Stream* st = self(u)->stream(id);
    if (st && st->ex) st->ex->addBody(std::string_view(reinterpret_cast<const char*>(data), len));
    if (st && st->ex && st->ex->requestPaused())
      st->unconsumed += len;
    else
      nghttp2_session_consume(session, id, len);
    return 0;
  }
  // RFC 9113 8.1: a response complete before its request (an early answer,
  // a local reply, the stream idle timeout's 408) ends with RST_STREAM
  // (NO_ERROR), so the client stops sending the rest of the body. nghttp2
  // then drops that stream's DATA still in flight and credits the
  // connection window for it itself.
  static int frameSend(nghttp2_session* session, const nghttp2_frame* f, void*) {
    bool ends =
        (f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) && (f->hd.flags & NGHTTP2_FLAG_END_STREAM);
    if (ends && nghttp2_session_get_stream_remote_close(session, f->hd.stream_id) == 0)
      nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_NO_ERROR);
    return 0;
  }
  static int streamClose(nghttp2_session* session, int32_t id, uint32_t, void* u) {
    auto& streams = self(u)->streams_;
    auto it = streams.find(id);
    if (it == streams.end()) return 0;
    std::unique_ptr<Stream> st = std::move(it->second);
    streams.erase(it);
    if (st->unconsumed) nghttp2_session_consume_connection(session, std::exchange(st->unconsumed, 0));
    if (st->ex) st->ex->cancel();  // the client reset it, or it is simply over
    if (st->ex) destroyLater(self(u)->ctx_.loop(), std::move(st->ex));
    std::shared_ptr<Stream> later(std::move(st));
    self(u)->ctx_.loop().post([later] {});
    return 0;
  }
};

Http2Session::Http2Session(HttpProxyContext& ctx, std::unique_ptr<Transport> downstream, SessionInfo info,
                           std::function<void(Http2Session*)> on_done, std::string_view already_read)
    : ctx_(ctx), down_(std::move(downstream)), info_(std::move(info)), on_done_(std::move(on_done)) {
  if (info_.source_namespace.empty()) info_.source_namespace = route::namespaceOf(info_.source_identity);
  nghttp2_session_callbacks* cbs = nullptr;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, &Callbacks::beginHeaders);
  nghttp2_session_callbacks_set_on_header_callback(cbs, &Callbacks::header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &Callbacks::frameRecv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &Callbacks::dataChunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &Callbacks::streamClose);
  nghttp2_session_callbacks_set_on_frame_send_callback(cbs, &Callbacks::frameSend);
  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  nghttp2_option_set_no_auto_window_update(opt, 1);  // request bodies: see dataChunk
  nghttp2_session_server_new2(&session_, cbs, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);
  nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100},
                                 {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 60 << 10},
                                 {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, kRequestStreamWindow}};
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, iv, 3);
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, kRequestConnWindow);
  down_->setCallbacks(this);
  armIdle();
  if (!already_read.empty())
    onData(already_read);
  else
    flush();
}

void Http2Session::armIdle() {
  auto idle = ctx_.options().downstream_idle_timeout;
  auto due = last_active_ + idle - std::chrono::steady_clock::now();
  auto wait = std::max(std::chrono::duration_cast<std::chrono::milliseconds>(due), std::chrono::milliseconds(1));
  idle_timer_ = ctx_.loop().addTimer(wait, [this] {
    idle_timer_ = 0;
    if (finished_) return;
    if (!streams_.empty() || std::chrono::steady_clock::now() - last_active_ < ctx_.options().downstream_idle_timeout)
      return armIdle();  // busy, or active since: look again when it could be idle
    nghttp2_session_terminate_session(session_, NGHTTP2_NO_ERROR);
    flush();
    close(false);
  });
}

Http2Session::~Http2Session() {
  *alive_ = false;
  if (idle_timer_) ctx_.loop().cancelTimer(idle_timer_);
  for (auto& [id, st] : streams_) st->ex.reset();
  streams_.clear();
  if (session_) nghttp2_session_del(session_);
  if (down_) down_->setCallbacks(nullptr);
}

Http2Session::Stream* Http2Session::stream(int32_t id) {
  auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : it->second.get();
}

void Http2Session::requestReady(Stream& st) {
  if (st.ex) st.ex->endBody(std::move(st.request_trailers));
  if (st.ex) st.ex->dispatch();
}

void Http2Session::onData(std::string_view bytes) {
  if (finished_) return;
  last_active_ = std::chrono::steady_clock::now();
  in_recv_ = true;
  ssize_t n = nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  in_recv_ = false;
  if (n < 0) {
    // A protocol error: nghttp2 queued GOAWAY; send it and close.
    flush();
    close(false);
    return;
  }
  flush();
}

void Http2Session::scheduleFlush() {
  if (in_recv_ || flush_posted_) return;  // onData flushes after mem_recv
  flush_posted_ = true;
  std::weak_ptr<bool> weak = alive_;
  ctx_.loop().post([this, weak] {
    auto a = weak.lock();
    if (!a || !*a) return;
    flush_posted_ = false;
    flush();
  });
}

void Http2Session::flush() {
  if (!down_ || finished_) return;
  for (;;) {
    const uint8_t* data = nullptr;
    ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n <= 0) break;
    down_->write(std::string_view(reinterpret_cast<const char*>(data), static_cast<size_t>(n)));
  }
  if (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_)) close(false);
}

void Http2Session::onEnd() {
  nghttp2_session_terminate_session(session_, NGHTTP2_NO_ERROR);
  flush();
  close(false);
}

void Http2Session::onClosed(const Status&) {
  down_->setCallbacks(nullptr);
  destroyLater(ctx_.loop(), std::move(down_));
  done();
  for (auto& [id, st] : streams_)
    if (st->ex) st->ex->cancel();
}

void Http2Session::onDrained() {
  for (auto& [id, st] : streams_)
    if (st->ex) st->ex->resumeUpstream();
}

void Http2Session::close(bool reset) {
  if (!down_) return done();
  if (reset) {
    down_->reset();
    return done();
  }
  down_->endWrite();
}

void Http2Session::done() {
  if (finished_) return;
  finished_ = true;
  if (on_done_) on_done_(this);
}

}  // namespace offcore::mesh::l7
