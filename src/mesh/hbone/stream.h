// HboneStream: one CONNECT stream of an H2Conn, as a Transport.
// write -> DATA frames (nghttp2 flow control), endWrite -> END_STREAM,
// reset -> RST_STREAM(CANCEL), pauseReading -> received bytes are held and
// not acknowledged, so the peer stops after one stream window.
#pragma once

#include <memory>
#include <string>

#include "mesh/hbone/h2_conn.h"
#include "mesh/transport.h"

namespace offcore::mesh::hbone {

class HboneStream : public Transport {
 public:
  HboneStream(std::shared_ptr<H2Conn> conn, int32_t id, std::string local, std::string remote);
  ~HboneStream() override;

  void setCallbacks(Callbacks* callbacks) override;
  void write(std::string_view bytes) override;
  size_t pendingWrite() const override { return tx_.size() - tx_off_; }
  void pauseReading(bool paused) override;
  void endWrite() override;
  void reset() override;
  std::string peerIdentity() const override { return conn_->peerIdentity(); }
  std::string localAddress() const override { return local_; }
  std::string remoteAddress() const override { return remote_; }
  // The serial of the certificate the peer proxy presented (status, tests).
  std::string peerSerial() const { return conn_->peerSerial(); }

  // From H2Conn.
  int32_t id() const { return id_; }
  void setId(int32_t id) { id_ = id; }
  void onH2Data(const uint8_t* data, size_t len);
  void onH2End();
  void onH2Closed(const Status& why);
  void onDrainedNotify() {
    if (callbacks_ && !closed_) callbacks_->onDrained();
  }
  ssize_t readOut(uint8_t* buf, size_t len, uint32_t* flags);
  void setAwaitingAnswer(bool awaiting) { awaiting_answer_ = awaiting; }
  void forgetConn() { detached_ = true; }

 private:
  void scheduleDelivery();
  void deliver();

  std::shared_ptr<H2Conn> conn_;
  int32_t id_;
  std::string local_, remote_;
  Callbacks* callbacks_ = nullptr;
  std::string tx_;
  size_t tx_off_ = 0;
  bool write_ended_ = false;
  bool deferred_ = false;
  bool above_high_ = false;
  std::string rx_;
  bool paused_ = false;
  bool end_pending_ = false;
  bool close_pending_ = false;
  bool closed_ = false;
  bool detached_ = false;  // no longer in the connection's stream table
  bool awaiting_answer_ = false;
  Status close_status_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace offcore::mesh::hbone
