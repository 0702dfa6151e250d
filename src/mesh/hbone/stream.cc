#include "mesh/hbone/stream.h"

#include <cstring>

namespace offcore::mesh::hbone {

HboneStream::HboneStream(std::shared_ptr<H2Conn> conn, int32_t id, std::string local, std::string remote)
    : conn_(std::move(conn)), id_(id), local_(std::move(local)), remote_(std::move(remote)) {}

HboneStream::~HboneStream() {
  // Bytes held for a paused reader still count against the peer's window.
  if (!rx_.empty() && !conn_->closed()) conn_->consume(id_, rx_.size());
  if (!detached_) conn_->detach(this, !closed_ && !awaiting_answer_);
}

void HboneStream::setCallbacks(Callbacks* callbacks) {
  callbacks_ = callbacks;
  if (callbacks_ && (!rx_.empty() || end_pending_ || close_pending_)) scheduleDelivery();
}

void HboneStream::write(std::string_view bytes) {
  if (closed_ || write_ended_ || bytes.empty()) return;
  if (tx_off_ > 0 && tx_off_ == tx_.size()) {
    tx_.clear();
    tx_off_ = 0;
  }
  tx_.append(bytes.data(), bytes.size());
  if (pendingWrite() >= conn_->options().write_high_watermark) above_high_ = true;
  if (deferred_ && conn_->session() && !conn_->closed()) {
    deferred_ = false;
    nghttp2_session_resume_data(conn_->session(), id_);
  }
  conn_->kick();
}

void HboneStream::endWrite() {
  if (closed_ || write_ended_) return;
  write_ended_ = true;
  if (deferred_ && conn_->session() && !conn_->closed()) {
    deferred_ = false;
    nghttp2_session_resume_data(conn_->session(), id_);
  }
  conn_->kick();
}

void HboneStream::reset() {
  if (closed_ || detached_) return;
  conn_->resetStream(id_);
}

void HboneStream::pauseReading(bool paused) {
  paused_ = paused;
  if (!paused_ && (!rx_.empty() || end_pending_ || close_pending_)) scheduleDelivery();
}

void HboneStream::scheduleDelivery() {
  std::weak_ptr<int> alive = alive_;
  conn_->loop().post([this, alive] {
    if (alive.lock()) deliver();
  });
}

void HboneStream::deliver() {
  if (!callbacks_) return;
  while (!paused_ && !rx_.empty()) {
    std::string chunk;
    chunk.swap(rx_);
    callbacks_->onData(chunk);
    if (!conn_->closed()) {
      conn_->consume(id_, chunk.size());
      conn_->kick();
    }
  }
  if (paused_ || !rx_.empty()) return;
  if (end_pending_) {
    end_pending_ = false;
    callbacks_->onEnd();
  }
  if (close_pending_) {
    close_pending_ = false;
    callbacks_->onClosed(close_status_);
  }
}

void HboneStream::onH2Data(const uint8_t* data, size_t len) {
  if (paused_ || !callbacks_ || !rx_.empty()) {
    rx_.append(reinterpret_cast<const char*>(data), len);
    return;
  }
  callbacks_->onData(std::string_view(reinterpret_cast<const char*>(data), len));
  conn_->consume(id_, len);
}

void HboneStream::onH2End() {
  if (!callbacks_ || !rx_.empty()) {
    end_pending_ = true;
    return;
  }
  callbacks_->onEnd();
}

void HboneStream::onH2Closed(const Status& why) {
  closed_ = true;
  detached_ = true;
  if (!why.ok()) {
    // A reset drops what a paused reader had not taken yet.
    if (!rx_.empty() && !conn_->closed()) conn_->consume(id_, rx_.size());
    rx_.clear();
    end_pending_ = false;
  }
  if (!callbacks_ || !rx_.empty() || end_pending_) {
    close_pending_ = true;
    close_status_ = why;
    return;
  }
  callbacks_->onClosed(why);
}

ssize_t HboneStream::readOut(uint8_t* buf, size_t len, uint32_t* flags) {
  size_t n = std::min(len, pendingWrite());
  std::memcpy(buf, tx_.data() + tx_off_, n);
  tx_off_ += n;
  if (tx_off_ == tx_.size()) {
    tx_.clear();
    tx_off_ = 0;
  } else if (tx_off_ > (1u << 20)) {
    tx_.erase(0, tx_off_);
    tx_off_ = 0;
  }
  if (above_high_ && pendingWrite() <= conn_->options().write_low_watermark) {
    above_high_ = false;
    conn_->noteDrained(id_);
  }
  if (pendingWrite() == 0) {
    if (write_ended_) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
    } else if (n == 0) {
      deferred_ = true;
      return NGHTTP2_ERR_DEFERRED;
    }
  }
  return static_cast<ssize_t>(n);
}

}  // namespace offcore::mesh::hbone
