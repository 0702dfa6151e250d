// Exchange: the HTTP/2 upstream side (streams on a shared H2Conn) and gRPC
// local replies.
#include "mesh/l7/exchange.h"

namespace offcore::mesh::l7 {

using route::AttemptOutcome;
using route::RouteResult;

int grpcStatusForHttp(int status) {
  switch (status) {
    case 400: return 13;  // INTERNAL
    case 401: return 16;  // UNAUTHENTICATED
    case 403: return 7;   // PERMISSION_DENIED
    case 404: return 12;  // UNIMPLEMENTED
    case 429:
    case 502:
    case 503: return 14;  // UNAVAILABLE
    case 504: return 4;   // DEADLINE_EXCEEDED
    default: return 2;    // UNKNOWN
  }
}

namespace {
bool isH2Protocol(const std::string& p) {
  return p == "grpc" || p == "http2" || p == "h2c" || p == "kubernetes.io/h2c" || p == "grpc-web";
}

// grpc-message is percent-encoded: printable ASCII but '%' goes as is.
std::string grpcMessage(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  std::string out;
  for (unsigned char c : text) {
    if (c >= 0x20 && c <= 0x7e && c != '%') {
      out += static_cast<char>(c);
    } else {
      char b[4];
      std::snprintf(b, sizeof b, "%%%02X", c);
      out += b;
    }
  }
  return out;
}
}  // namespace

void Exchange::H2Attempt::onH2Head(http::MessageHead&& head, bool end_stream) {
  if (x) x->onUpstreamHead(std::move(head), end_stream);
}
void Exchange::H2Attempt::onH2Data(std::string_view bytes) {
  if (x) x->onUpstreamBody(bytes);
}
void Exchange::H2Attempt::onH2Trailers(http::Headers&& trailers) {
  if (x) x->onUpstreamTrailers(trailers);
}
void Exchange::H2Attempt::onH2End() {
  conn = nullptr;  // the stream is over
  if (x) x->onUpstreamComplete();
}
void Exchange::H2Attempt::onH2Reset(bool refused, const std::string& why) {
  conn = nullptr;
  if (!x) return;
  x->refused_ = refused;
  x->attemptFailed({AttemptOutcome::Kind::kReset, 0}, why);
}

// The Service port's appProtocol says HTTP/2 (or, with none declared, the
// request is gRPC, which only exists over HTTP/2).
bool Exchange::upstreamSpeaksH2() const {
  if (route_.kind == RouteResult::Kind::kRoute) {
    if (const MeshService* s = routes_->service(route_.cluster.service)) {
      for (const auto& p : s->ports) {
        if (p.port != route_.cluster.port) continue;
        if (isH2Protocol(p.app_protocol)) return true;
        if (!p.app_protocol.empty()) return false;
      }
    }
  }
  return grpc_;
}

void Exchange::h2Ready(uint64_t id, Result<H2Conn*> conn) {
  if (finished_ || h2_wait_ != id) return;  // abandoned (timeout, cancel): the connection serves others
  h2_wait_ = 0;
  if (!conn.ok()) return attemptFailed({AttemptOutcome::Kind::kConnectFailure, 0}, conn.error().message);
  sendH2(*conn, id);
}

void Exchange::sendH2(H2Conn* conn, uint64_t id) {
  h2_ = std::make_unique<H2Attempt>(this, id);
  h2_unconsumed_ = 0;
  body_.rewind();  // a retry starts only while the body is whole (canReplayBody)
  // Length: the client's, or the whole body's when it is already here.
  std::optional<uint64_t> length = head_.content_length;
  if (!length && body_.complete() && body_.received() > 0) length = body_.received();
  bool has_body = !body_.complete() || body_.received() > 0 || !body_.trailers().empty();
  auto stream = conn->submitStreaming(head_, length, has_body, h2_.get());
  if (!stream.ok()) return attemptFailed({AttemptOutcome::Kind::kReset, 0}, stream.error().message);
  h2_->conn = conn;
  h2_->stream = *stream;
  ctx_.stats().upstreamH2Stream(rec_.cluster, conn->active(), conn->started() == 1);
}

void Exchange::releaseH2() {
  std::unique_ptr<H2Attempt> a = std::move(h2_);
  a->x = nullptr;
  if (a->conn) a->conn->cancel(a->stream);  // still open: RST_STREAM(CANCEL)
  a->conn = nullptr;
  destroyLater(ctx_.loop(), std::move(a));
}

void Exchange::onUpstreamTrailers(const http::Headers& trailers) {
  touch();
  if (const std::string* g = grpc_ ? http::findHeader(trailers, "grpc-status") : nullptr) rec_.grpc_status = *g;
  sink_->onResponseTrailers(trailers);
}

// A trailers-only gRPC response: HTTP 200, the status in grpc-status.
void Exchange::respondGrpc(int status, const std::string& message, const http::Headers& extra) {
  int code = grpcStatusForHttp(status);
  rec_.grpc_status = std::to_string(code);
  http::MessageHead h;
  h.status = 200;
  h.reason = http::reasonPhrase(200);
  h.headers = extra;
  h.headers.emplace_back("content-type", "application/grpc");
  h.headers.emplace_back("grpc-status", rec_.grpc_status);
  h.headers.emplace_back("grpc-message", grpcMessage(message));
  sink_->onResponseHead(h, true);
  sink_->onResponseEnd();
  finish(status);
}

}  // namespace offcore::mesh::l7
