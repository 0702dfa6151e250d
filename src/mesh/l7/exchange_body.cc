// Exchange: the request body, streamed to the current attempt as it comes
// (HTTP/1.1 upstream: Content-Length or chunked; HTTP/2 upstream: DATA
// frames under the stream's flow control), with the downstream paused while
// more than request_buffer_limit waits; request trailers; the timeouts that
// start at the end of the request.
#include <algorithm>
#include <cctype>
#include <cstring>

#include "mesh/l7/exchange.h"
#include "mesh/l7/exchange_h1.h"

namespace offcore::mesh::l7 {

using route::AttemptOutcome;

namespace {
constexpr size_t kSlice = 256 << 10;  // body bytes handed to an HTTP/1.1 upstream at a time

// Trailer fields that may be forwarded: no framing, routing or hop-by-hop
// fields (RFC 9110 6.5.1), no pseudo-headers.
bool forwardableTrailer(const std::string& lower_name, const http::Headers& trailers) {
  return !lower_name.empty() && lower_name[0] != ':' && lower_name != "content-length" && lower_name != "host" &&
         lower_name != "transfer-encoding" && !http::isHopByHop(lower_name, trailers);
}

}  // namespace

void Exchange::addBody(std::string_view bytes) {
  touch();
  rec_.request_bytes += bytes.size();
  if (finished_) return;  // answered already: the rest of the request is dropped
  body_.append(bytes);
  rec_.request_buffer_peak = std::max<uint64_t>(rec_.request_buffer_peak, body_.peakHeld());
  pumpBody();
  if (!finished_ && body_.overLimit()) request_paused_ = true;
}

void Exchange::endBody(http::Headers trailers) {
  if (finished_) return;
  touch();
  body_.finish(std::move(trailers));
  armRouteTimer();
  armTryTimer();
  pumpBody();
}

void Exchange::pumpBody() {
  if (finished_) return;
  pumpH1();
  if (finished_) return;
  if (h2_ && h2_->conn) h2_->conn->resumeBody(h2_->stream);
  if (request_paused_ && body_.underLowMark()) {
    request_paused_ = false;
    sink_->onRequestDrained();
  }
}

void Exchange::pumpH1() {
  if (!up_ || !up_->conn || !up_->sending || up_->body_done) return;
  Upstream* up = up_.get();
  Transport& t = up->conn->transport();
  const size_t high = ctx_.options().request_buffer_limit;
  while (t.pendingWrite() < high) {
    std::string_view u = body_.unsent().substr(0, kSlice);
    if (u.empty()) break;
    // Transport::write copies what it cannot send now: no copy of our own.
    if (up->chunked) {
      t.write(http::encodeChunk(u));
    } else {
      t.write(u);
    }
    body_.consumed(u.size());
    touch();
    if (up_.get() != up || !up->conn) return;  // the write failed the attempt
  }
  if (!body_.allSent()) return;
  up->body_done = true;
  if (!up->chunked) return;
  std::string last = "0\r\n";
  for (const auto& [k, v] : body_.trailers())
    if (forwardableTrailer(http::lowerCase(k), body_.trailers())) last += k + ": " + v + "\r\n";
  t.write(last + "\r\n");
}

size_t Exchange::readBodyH2(uint8_t* buf, size_t len, bool& eof) {
  std::string_view u = body_.unsent().substr(0, len);
  std::memcpy(buf, u.data(), u.size());
  body_.consumed(u.size());
  if (!u.empty()) touch();
  eof = body_.allSent();
  if (request_paused_ && body_.underLowMark()) {
    request_paused_ = false;
    sink_->onRequestDrained();
  }
  return u.size();
}

bool Exchange::canReplayBody() {
  if (body_.replayable()) return true;
  // Envoy's retry_or_shadow_abandoned: more than request_buffer_limit went
  // upstream, the start of the body is gone.
  if (!rec_.retry_abandoned) {
    rec_.retry_abandoned = true;
    ctx_.stats().retryAbandoned(rec_.cluster);
  }
  return false;
}

// Envoy starts the route timeout when the downstream request has ended.
void Exchange::armRouteTimer() {
  if (finished_ || route_timer_ || !counted_active_ || !body_.complete()) return;
  if (!route_.route || route_.route->timeout.count() <= 0) return;
  route_timer_ = ctx_.loop().addTimer(route_.route->timeout, [this] {
    route_timer_ = 0;
    respondLocal(504, "upstream request timeout\n", "UT");
  });
}

void Exchange::armTryTimer() {
  if (finished_ || try_timer_ || !try_wanted_ || !body_.complete()) return;
  const auto& retries = route_.route ? route_.route->retries : std::nullopt;
  if (!retries || retries->per_try_timeout.count() <= 0) return;
  try_timer_ = ctx_.loop().addTimer(retries->per_try_timeout, [this] {
    try_timer_ = 0;
    attemptFailed({AttemptOutcome::Kind::kTimeout, 0}, "per-try timeout");
  });
}

size_t Exchange::H2Attempt::readBody(uint8_t* buf, size_t len, bool& eof) {
  eof = false;
  return x ? x->readBodyH2(buf, len, eof) : 0;
}

http::Headers Exchange::H2Attempt::requestTrailers() {
  http::Headers out;
  if (!x) return out;
  for (const auto& [k, v] : x->body_.trailers()) {
    std::string name = http::lowerCase(k);
    if (forwardableTrailer(name, x->body_.trailers())) out.emplace_back(std::move(name), v);
  }
  return out;
}

}  // namespace offcore::mesh::l7
