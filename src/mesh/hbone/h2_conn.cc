#include "mesh/hbone/h2_conn.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "mesh/hbone/stream.h"
#include "mesh/hbone/wire.h"

namespace offcore::mesh::hbone {
namespace {

constexpr size_t kOutChunk = 64 << 10;

H2Conn* self(void* user_data) { return static_cast<H2Conn*>(user_data); }

int beginHeadersCb(nghttp2_session*, const nghttp2_frame* frame, void* ud) { return self(ud)->onBeginHeaders(frame); }
int headerCb(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen, const uint8_t* value,
             size_t valuelen, uint8_t, void* ud) {
  return self(ud)->onHeader(frame, std::string_view(reinterpret_cast<const char*>(name), namelen),
                            std::string_view(reinterpret_cast<const char*>(value), valuelen));
}
int frameRecvCb(nghttp2_session*, const nghttp2_frame* frame, void* ud) { return self(ud)->onFrameRecv(frame); }
int dataChunkCb(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data, size_t len, void* ud) {
  return self(ud)->onDataChunk(stream_id, data, len);
}
int streamCloseCb(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* ud) {
  return self(ud)->onStreamClose(stream_id, error_code);
}
ssize_t dataReadCb(nghttp2_session* session, int32_t stream_id, uint8_t* buf, size_t length, uint32_t* flags,
                   nghttp2_data_source*, void*) {
  auto* s = static_cast<HboneStream*>(nghttp2_session_get_stream_user_data(session, stream_id));
  if (!s) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  return s->readOut(buf, length, flags);
}

// name: a literal (static storage); value must outlive the submit call.
nghttp2_nv header(std::string_view name, const std::string& value) {
  return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
                    NGHTTP2_NV_FLAG_NONE};
}

}  // namespace

H2Conn::H2Conn(EventLoop& loop, int fd, std::unique_ptr<tls::TlsSession> tls, Role role, H2Options options,
               std::string peer_addr)
    : loop_(loop), fd_(fd), tls_(std::move(tls)), role_(role), options_(options), peer_addr_(std::move(peer_addr)) {
  local_addr_ = socketAddress(fd_, /*peer=*/false);
}

H2Conn::~H2Conn() {
  if (!closed_) {
    on_closed_ = nullptr;
    close(okStatus());
  }
  if (session_) nghttp2_session_del(session_);
}

Status H2Conn::start(bool connecting) {
  state_ = connecting ? State::kConnecting : State::kHandshake;
  std::weak_ptr<H2Conn> weak = weak_from_this();
  interest_ = connecting ? EPOLLOUT : EPOLLIN;
  OC_TRY(loop_.watchFd(fd_, interest_, [weak](uint32_t events) {
    if (auto s = weak.lock()) s->onEvents(events);
  }));
  handshake_timer_ = loop_.addTimer(options_.handshake_timeout, [weak] {
    auto s = weak.lock();
    if (!s || s->state_ == State::kOpen || s->closed_) return;
    s->handshake_timer_ = 0;
    std::string why = "hbone: mTLS handshake with " + s->peer_addr_ + " timed out after " +
                      std::to_string(s->options_.handshake_timeout.count()) + " ms";
    spdlog::warn("{}", why);
    s->close(makeError(why, ETIMEDOUT));
  });
  if (!connecting) doHandshake();
  return okStatus();
}

bool H2Conn::usable() const {
  if (closed_) return false;
  if (!session_) return true;  // still handshaking: opens queue up
  return nghttp2_session_check_request_allowed(session_) != 0;
}

void H2Conn::onEvents(uint32_t events) {
  auto keep = shared_from_this();
  if (closed_) return;
  if (state_ == State::kConnecting) {
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      close(makeError(
          "hbone: connect to " + peer_addr_ + ": " + std::strerror(err) + "; is the peer node's proxy listening?",
          err));
      return;
    }
    local_addr_ = socketAddress(fd_, false);
    state_ = State::kHandshake;
  }
  if (state_ == State::kHandshake) {
    doHandshake();
    return;
  }
  readSome();
  if (!closed_) flush();
}

void H2Conn::doHandshake() {
  switch (tls_->handshake()) {
    case tls::TlsSession::Step::kWantRead:
      interest_ = EPOLLIN;
      (void)loop_.modifyFd(fd_, interest_);
      return;
    case tls::TlsSession::Step::kWantWrite:
      interest_ = EPOLLIN | EPOLLOUT;
      (void)loop_.modifyFd(fd_, interest_);
      return;
    case tls::TlsSession::Step::kFailed: {
      std::string why = "hbone: mTLS with " + peer_addr_ + " refused: " + tls_->failure();
      spdlog::warn("{}", why);
      close(makeError(why, EACCES));
      return;
    }
    case tls::TlsSession::Step::kDone: break;
  }
  if (handshake_timer_) loop_.cancelTimer(handshake_timer_);
  handshake_timer_ = 0;
  Status st = setupSession();
  if (!st.ok()) {
    close(st);
    return;
  }
  state_ = State::kOpen;
  armIdle();
  readSome();
  if (!closed_) flush();
}

Status H2Conn::setupSession() {
  nghttp2_session_callbacks* cbs = nullptr;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, beginHeadersCb);
  nghttp2_session_callbacks_set_on_header_callback(cbs, headerCb);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, frameRecvCb);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, dataChunkCb);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, streamCloseCb);
  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  nghttp2_option_set_no_auto_window_update(opt, 1);
  int rv = role_ == Role::kClient ? nghttp2_session_client_new2(&session_, cbs, this, opt)
                                  : nghttp2_session_server_new2(&session_, cbs, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);
  if (rv != 0) return makeError(std::string("hbone: http/2 session: ") + nghttp2_strerror(rv));
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, options_.max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(options_.stream_window)},
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
  };
  size_t n = role_ == Role::kClient ? 3 : 2;
  if (role_ == Role::kClient) iv[0].value = 0;  // no stream the server could open to us
  rv = nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, role_ == Role::kClient ? iv + 1 : iv,
                               role_ == Role::kClient ? n - 1 : n);
  if (rv == 0) rv = nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, options_.connection_window);
  if (rv != 0) return makeError(std::string("hbone: http/2 settings: ") + nghttp2_strerror(rv));
  return okStatus();
}

uint64_t H2Conn::open(const std::string& authority, const std::string& forwarded_for, OpenDone done) {
  uint64_t handle = next_open_++;
  Open& open = opens_[handle];
  open.authority = authority;
  open.forwarded_for = forwarded_for;
  open.done = std::move(done);
  if (idle_timer_) loop_.cancelTimer(idle_timer_);
  idle_timer_ = 0;
  if (state_ == State::kOpen && peer_settings_) {
    submitOpen(handle, open);
    kick();
  }
  return handle;
}

void H2Conn::submitQueuedOpens() {
  std::vector<uint64_t> handles;
  for (auto& [handle, open] : opens_) {
    if (open.stream_id < 0) handles.push_back(handle);
  }
  for (uint64_t h : handles) {
    auto it = opens_.find(h);
    if (it != opens_.end()) submitOpen(h, it->second);
  }
}

void H2Conn::submitOpen(uint64_t handle, Open& open) {
  if (open.stream_id >= 0) return;
  std::vector<nghttp2_nv> nva;
  std::string method = "CONNECT";
  std::string fwd = open.forwarded_for.empty() ? "" : forwardedFor(open.forwarded_for);
  nva.push_back(header(":method", method));
  nva.push_back(header(":authority", open.authority));
  if (!fwd.empty()) nva.push_back(header("forwarded", fwd));
  open.stream = std::make_unique<HboneStream>(shared_from_this(), -1, local_addr_, open.authority);
  nghttp2_data_provider prd{};
  prd.read_callback = dataReadCb;
  int32_t id = nghttp2_submit_request(session_, nullptr, nva.data(), nva.size(), &prd, open.stream.get());
  if (id < 0) {
    OpenDone done = std::move(open.done);
    open.stream->forgetConn();
    opens_.erase(handle);
    done(makeError(std::string("hbone: CONNECT via ") + peer_addr_ + ": " + nghttp2_strerror(id)));
    return;
  }
  open.stream_id = id;
  open.stream->setId(id);
  streams_[id] = open.stream.get();
  open_by_stream_[id] = handle;
}

void H2Conn::cancelOpen(uint64_t handle) {
  auto it = opens_.find(handle);
  if (it == opens_.end()) return;
  if (it->second.stream_id >= 0) open_by_stream_.erase(it->second.stream_id);
  opens_.erase(it);  // the stream's destructor resets it
  kick();
}

void H2Conn::readSome() {
  thread_local char buf[64 << 10];
  for (int i = 0; i < 32 && !closed_; ++i) {
    ssize_t n = tls_->read(buf, sizeof buf);
    if (n == 0) break;
    if (n < 0) {
      std::string why = tls_->failure().empty() ? "the peer closed the connection" : tls_->failure();
      close(makeError("hbone: connection with " + peer_addr_ + " ended: " + why, ECONNRESET));
      return;
    }
    ssize_t rv = nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(buf), static_cast<size_t>(n));
    if (rv < 0) {
      close(makeError("hbone: http/2 from " + peer_addr_ + ": " + nghttp2_strerror(static_cast<int>(rv)), EPROTO));
      return;
    }
  }
}

void H2Conn::kick() {
  if (kick_posted_ || closed_) return;
  kick_posted_ = true;
  std::weak_ptr<H2Conn> weak = weak_from_this();
  loop_.post([weak] {
    auto s = weak.lock();
    if (!s) return;
    s->kick_posted_ = false;
    s->flush();
  });
}

void H2Conn::flush() {
  if (closed_ || state_ != State::kOpen) return;
  auto keep = shared_from_this();
  for (;;) {
    while (out_.size() - out_off_ < kOutChunk) {
      const uint8_t* data = nullptr;
      ssize_t n = nghttp2_session_mem_send(session_, &data);
      if (n < 0) {
        close(makeError("hbone: http/2 to " + peer_addr_ + ": " + nghttp2_strerror(static_cast<int>(n)), EPROTO));
        return;
      }
      if (n == 0) break;
      if (out_off_ > kOutChunk * 4) {
        out_.erase(0, out_off_);
        out_off_ = 0;
      }
      out_.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
    }
    if (out_off_ == out_.size()) break;
    ssize_t w = tls_->write(out_.data() + out_off_, out_.size() - out_off_);
    if (w < 0) {
      close(makeError("hbone: connection with " + peer_addr_ + " failed: " + tls_->failure(), ECONNRESET));
      return;
    }
    if (w == 0) break;
    out_off_ += static_cast<size_t>(w);
    if (out_off_ == out_.size()) {
      out_.clear();
      out_off_ = 0;
    }
  }
  std::vector<int32_t> drained;
  drained.swap(drained_);
  for (int32_t id : drained) {
    if (HboneStream* s = stream(id)) s->onDrainedNotify();
  }
  if (closed_) return;
  if (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_) && out_.empty()) {
    close(okStatus());
    return;
  }
  updateInterest();
}

void H2Conn::updateInterest() {
  uint32_t want = EPOLLIN;
  if (out_off_ < out_.size() || tls_->wantWrite()) want |= EPOLLOUT;
  if (want != interest_) {
    interest_ = want;
    (void)loop_.modifyFd(fd_, interest_);
  }
}

void H2Conn::armIdle() {
  if (closed_ || !streams_.empty() || !opens_.empty() || idle_timer_) return;
  std::weak_ptr<H2Conn> weak = weak_from_this();
  idle_timer_ = loop_.addTimer(options_.idle_timeout, [weak] {
    auto s = weak.lock();
    if (!s) return;
    s->idle_timer_ = 0;
    if (!s->streams_.empty() || !s->opens_.empty()) return;
    nghttp2_submit_goaway(s->session_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(s->session_),
                          NGHTTP2_NO_ERROR, nullptr, 0);
    s->flush();
    s->close(okStatus());
  });
}

void H2Conn::close(const Status& why) {
  if (closed_) return;
  closed_ = true;
  state_ = State::kClosed;
  auto keep = weak_from_this().lock();
  if (handshake_timer_) loop_.cancelTimer(handshake_timer_);
  if (idle_timer_) loop_.cancelTimer(idle_timer_);
  handshake_timer_ = idle_timer_ = 0;
  loop_.unwatchFd(fd_);
  ::close(fd_);
  Status gone = why.ok() ? Status(makeError("hbone: connection with " + peer_addr_ + " closed")) : why;
  auto streams = std::move(streams_);
  streams_.clear();
  auto opens = std::move(opens_);
  opens_.clear();
  auto pending = std::move(open_by_stream_);
  open_by_stream_.clear();
  incoming_.clear();
  for (auto& [id, s] : streams) {
    if (!pending.count(id)) s->onH2Closed(gone);
  }
  for (auto& [h, o] : opens) {
    if (o.stream) o.stream->forgetConn();
    if (o.done) o.done(gone.error());
  }
  if (on_closed_) {
    auto cb = std::move(on_closed_);
    loop_.post([cb, why] { cb(why); });
  }
}

}  // namespace offcore::mesh::hbone
