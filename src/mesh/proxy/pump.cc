#include "mesh/proxy/pump.h"

namespace offcore::mesh {

Pump::Pump(std::unique_ptr<Transport> downstream, std::unique_ptr<Transport> upstream, Done done)
    : down_(std::move(downstream)), up_(std::move(upstream)), done_(std::move(done)) {
  down_->setCallbacks(&down_side_);
  up_->setCallbacks(&up_side_);
}

Pump::~Pump() {
  // No callback may reach a destroyed pump.
  if (down_) down_->setCallbacks(nullptr);
  if (up_) up_->setCallbacks(nullptr);
}

void Pump::abort() {
  stats_.reset = true;
  if (stats_.error.empty()) stats_.error = "aborted by the proxy";
  resetSide(true);
  resetSide(false);
}

// A transport reports no onClosed for a reset its owner asked for: the
// bookkeeping happens here.
void Pump::resetSide(bool is_down) {
  bool& closed = is_down ? down_closed_ : up_closed_;
  if (closed) return;
  selfOf(is_down).reset();
  closed = true;
  maybeFinish();
}

void Pump::maybeFinish() {
  if (down_closed_ && up_closed_ && !finished_) {
    finished_ = true;
    if (done_) done_(stats_);
  }
}

void Pump::Side::onData(std::string_view bytes) {
  if (is_down_ ? pump_.up_closed_ : pump_.down_closed_) return;  // nobody to give them to
  Transport& peer = pump_.peerOf(is_down_);
  (is_down_ ? pump_.stats_.bytes_up : pump_.stats_.bytes_down) += bytes.size();
  peer.write(bytes);
  if (peer.pendingWrite() > kHighWater) pump_.selfOf(is_down_).pauseReading(true);
}

void Pump::Side::onDrained() {
  // The peer of the side that drained may read again.
  pump_.peerOf(is_down_).pauseReading(false);
}

void Pump::Side::onEnd() {
  bool peer_closed = is_down_ ? pump_.up_closed_ : pump_.down_closed_;
  if (!peer_closed) pump_.peerOf(is_down_).endWrite();
}

void Pump::Side::onClosed(const Status& why) { pump_.closed(is_down_, why); }

void Pump::closed(bool is_down, const Status& why) {
  (is_down ? down_closed_ : up_closed_) = true;
  if (!why.ok()) {
    stats_.reset = true;
    if (stats_.error.empty()) stats_.error = why.error().message;
    // One side failed: the other must not wait for bytes that will not come.
    resetSide(!is_down);
  }
  maybeFinish();
}

}  // namespace offcore::mesh
