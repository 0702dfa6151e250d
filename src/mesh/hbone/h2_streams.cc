// H2Conn's stream side: nghttp2 callbacks, CONNECT requests and answers.
#include <spdlog/spdlog.h>

#include <cerrno>

#include "mesh/hbone/h2_conn.h"
#include "mesh/hbone/stream.h"
#include "mesh/hbone/wire.h"

namespace offcore::mesh::hbone {
namespace {

// name: a literal (static storage); value must outlive the submit call.
nghttp2_nv header(std::string_view name, const std::string& value) {
  return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
                    NGHTTP2_NV_FLAG_NONE};
}

ssize_t answerDataCb(nghttp2_session* session, int32_t stream_id, uint8_t* buf, size_t length, uint32_t* flags,
                     nghttp2_data_source*, void*) {
  auto* s = static_cast<HboneStream*>(nghttp2_session_get_stream_user_data(session, stream_id));
  if (!s) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  return s->readOut(buf, length, flags);
}

}  // namespace

HboneStream* H2Conn::stream(int32_t id) {
  auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : it->second;
}

void H2Conn::consume(int32_t stream_id, size_t n) {
  if (closed_ || !session_ || n == 0) return;
  nghttp2_session_consume(session_, stream_id, n);
}

void H2Conn::detach(HboneStream* s, bool reset) {
  auto it = streams_.find(s->id());
  if (it == streams_.end() || it->second != s) return;
  streams_.erase(it);
  if (closed_) return;
  nghttp2_session_set_stream_user_data(session_, s->id(), nullptr);
  if (reset) nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, s->id(), NGHTTP2_CANCEL);
  kick();
  armIdle();
}

void H2Conn::resetStream(int32_t stream_id) {
  if (closed_ || !session_) return;
  nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_CANCEL);
  kick();
}

int H2Conn::onBeginHeaders(const nghttp2_frame* frame) {
  if (role_ == Role::kServer && frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
    incoming_[frame->hd.stream_id] = Incoming{};
    if (idle_timer_) loop_.cancelTimer(idle_timer_);
    idle_timer_ = 0;
  }
  return 0;
}

int H2Conn::onHeader(const nghttp2_frame* frame, std::string_view name, std::string_view value) {
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  int32_t id = frame->hd.stream_id;
  if (role_ == Role::kServer) {
    auto it = incoming_.find(id);
    if (it == incoming_.end()) return 0;
    if (name == ":method") it->second.method = value;
    if (name == ":authority") it->second.authority = value;
    if (name == "forwarded" && it->second.forwarded.empty()) it->second.forwarded = value;
    return 0;
  }
  auto h = open_by_stream_.find(id);
  if (h != open_by_stream_.end() && name == ":status") opens_[h->second].status = value;
  return 0;
}

int H2Conn::onFrameRecv(const nghttp2_frame* frame) {
  int32_t id = frame->hd.stream_id;
  if (frame->hd.type == NGHTTP2_SETTINGS && !(frame->hd.flags & NGHTTP2_FLAG_ACK) && !peer_settings_) {
    peer_settings_ = true;
    if (role_ == Role::kClient) submitQueuedOpens();
  }
  if (frame->hd.type == NGHTTP2_HEADERS) {
    if (role_ == Role::kServer && frame->headers.cat == NGHTTP2_HCAT_REQUEST) handleConnect(id);
    if (role_ == Role::kClient && frame->headers.cat == NGHTTP2_HCAT_RESPONSE) handleResponse(id);
  }
  if ((frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS) &&
      (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) && !open_by_stream_.count(id)) {
    if (HboneStream* s = stream(id)) s->onH2End();
  }
  return 0;
}

int H2Conn::onDataChunk(int32_t stream_id, const uint8_t* data, size_t len) {
  HboneStream* s = stream(stream_id);
  if (!s || open_by_stream_.count(stream_id)) {
    // Nobody takes these bytes (a stream we dropped): acknowledge them.
    nghttp2_session_consume(session_, stream_id, len);
    return 0;
  }
  s->onH2Data(data, len);
  return 0;
}

int H2Conn::onStreamClose(int32_t stream_id, uint32_t error_code) {
  incoming_.erase(stream_id);
  auto h = open_by_stream_.find(stream_id);
  if (h != open_by_stream_.end()) {
    uint64_t handle = h->second;
    open_by_stream_.erase(h);
    auto it = opens_.find(handle);
    streams_.erase(stream_id);
    if (it != opens_.end() && error_code == NGHTTP2_REFUSED_STREAM && ++it->second.refused <= 3) {
      // Not processed by the peer (over its stream limit): ask again.
      it->second.stream->forgetConn();
      it->second.stream.reset();
      it->second.stream_id = -1;
      it->second.status.clear();
      submitOpen(handle, it->second);
      armIdle();
      return 0;
    }
    if (it != opens_.end()) {
      OpenDone done = std::move(it->second.done);
      std::string authority = it->second.authority;
      it->second.stream->forgetConn();
      opens_.erase(it);
      done(makeError("hbone: CONNECT " + authority + " via " + peer_addr_ + " was reset by the peer (" +
                         nghttp2_http2_strerror(error_code) + ")",
                     ECONNREFUSED));
    }
  } else if (HboneStream* s = stream(stream_id)) {
    streams_.erase(stream_id);
    s->onH2Closed(error_code == NGHTTP2_NO_ERROR
                      ? okStatus()
                      : Status(makeError(std::string("hbone: stream reset by ") + peer_addr_ + " (" +
                                             nghttp2_http2_strerror(error_code) + ")",
                                         ECONNRESET)));
  }
  armIdle();
  return 0;
}

void H2Conn::answer(int32_t stream_id, int status, bool with_body) {
  std::string code = std::to_string(status);
  std::string name = ":status";
  nghttp2_nv nva[] = {header(name, code)};
  nghttp2_data_provider prd{};
  prd.read_callback = answerDataCb;
  nghttp2_submit_response(session_, stream_id, nva, 1, with_body ? &prd : nullptr);
}

void H2Conn::handleConnect(int32_t id) {
  auto it = incoming_.find(id);
  if (it == incoming_.end()) return;
  Incoming in = std::move(it->second);
  incoming_.erase(it);
  if (in.method != "CONNECT") {
    answer(id, 405, false);
    return;
  }
  auto target = parseAuthority(in.authority);
  if (!target.ok()) {
    spdlog::info("hbone: {} from {}: {}", in.authority, peer_addr_, target.error().message);
    answer(id, 400, false);
    return;
  }
  TunnelRequest req;
  req.target_ip = target->ip;
  req.target_port = target->port;
  req.source_ip = parseForwardedFor(in.forwarded);
  req.peer_identity = tls_->peerIdentity();
  req.local_identity = tls_->localIdentity();
  std::string remote = req.source_ip.empty() ? peer_addr_ : formatAuthority(req.source_ip, 0);
  auto s = std::make_unique<HboneStream>(shared_from_this(), id, in.authority, remote);
  HboneStream* raw = s.get();
  raw->setAwaitingAnswer(true);
  streams_[id] = raw;
  nghttp2_session_set_stream_user_data(session_, id, raw);
  Status st = handler_ ? handler_(req, std::move(s)) : Status(makeError("no tunnel handler", EACCES));
  bool alive = stream(id) == raw;
  if (st.ok() && alive) {
    raw->setAwaitingAnswer(false);
    answer(id, 200, true);
  } else {
    if (alive) {  // the handler failed but kept the stream: it is dead to us
      streams_.erase(id);
      raw->forgetConn();
    }
    nghttp2_session_set_stream_user_data(session_, id, nullptr);
    int code = st.ok() ? 503 : (st.error().code == EACCES || st.error().code == EPERM) ? 403 : 503;
    spdlog::info("hbone: CONNECT {} from {} ({}) refused with {}: {}", in.authority, peer_addr_, req.peer_identity,
                 code, st.ok() ? "the handler dropped the stream" : st.error().message);
    answer(id, code, false);
  }
  kick();
}

void H2Conn::handleResponse(int32_t id) {
  auto h = open_by_stream_.find(id);
  if (h == open_by_stream_.end()) return;
  auto it = opens_.find(h->second);
  open_by_stream_.erase(h);
  if (it == opens_.end()) return;
  Open open = std::move(it->second);
  opens_.erase(it);
  if (open.status == "200") {
    open.done(std::unique_ptr<Transport>(std::move(open.stream)));
    return;
  }
  // Any other answer: the stream is over; its destructor resets it.
  open.done(makeError("hbone: " + peer_addr_ + " answered " + open.status + " to CONNECT " + open.authority +
                          (open.status == "403" ? " (denied by the peer's policy)" : ""),
                      open.status == "403" ? EACCES : ECONNREFUSED));
}

}  // namespace offcore::mesh::hbone
