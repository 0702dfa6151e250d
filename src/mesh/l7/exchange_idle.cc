// Exchange: Envoy's stream idle timeout. One timer per request from its head
// to its end; activity (request head, body and trailers from the client,
// response head, body and trailers from the upstream, body bytes flushed to
// the upstream or the client) only moves a timestamp, and the timer, when it
// fires early, waits for the rest. So a busy stream costs one timer per
// timeout period, not one per chunk.
#include "mesh/l7/exchange.h"

namespace offcore::mesh::l7 {

using std::chrono::steady_clock;

// Envoy: the connection manager's stream_idle_timeout applies from the
// head; once routed, the route's idle_timeout overrides it (0 switches it
// off even when the connection manager has one).
void Exchange::chooseIdleTimeout() {
  std::chrono::milliseconds chosen = idle_timeout_;
  if (route_.kind == route::RouteResult::Kind::kRoute && route_.service) {
    for (const auto& p : route_.service->ports)
      if (p.port == info_.dst_port && p.stream_idle_timeout) chosen = *p.stream_idle_timeout;
  }
  if (route_.route && route_.route->idle_timeout) chosen = *route_.route->idle_timeout;
  if (chosen == idle_timeout_) return;
  idle_timeout_ = chosen;
  armIdleTimer();
}

void Exchange::armIdleTimer() {
  if (idle_timer_) ctx_.loop().cancelTimer(idle_timer_), idle_timer_ = 0;
  if (finished_ || idle_timeout_.count() <= 0) return;
  auto left = std::chrono::ceil<std::chrono::milliseconds>(last_activity_ + idle_timeout_ - steady_clock::now());
  idle_timer_ = ctx_.loop().addTimer(std::max(left, std::chrono::milliseconds(1)), [this] {
    idle_timer_ = 0;
    if (steady_clock::now() - last_activity_ < idle_timeout_) return armIdleTimer();  // active since
    onStreamIdle();
  });
}

// Envoy: 408 "stream timeout" while no response has started, else a reset
// of the stream (HTTP/2 RST_STREAM, HTTP/1.1 the connection). Either way
// the upstream attempt is cancelled: its connection, mid-request, is closed
// (HTTP/1.1) or its stream reset (HTTP/2).
void Exchange::onStreamIdle() {
  if (finished_) return;
  ctx_.stats().streamIdleTimeout(rec_.cluster);
  if (!response_started_) return respondLocal(408, "stream timeout", "SI");
  rec_.flags = "SI";
  releaseUpstream(false);
  sink_->onResponseAbort();
  finish(rec_.status);
}

}  // namespace offcore::mesh::l7
