// One NVMe/TCP connection on the target: exactly one NVMe queue (admin or
// I/O). Parses PDUs, runs the IC handshake, moves command data (in-capsule
// or through R2T/H2CData), executes commands on its controller and sends
// C2HData and CapsuleResp PDUs. Lives on one poll group; every member runs
// on that group's thread.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "nvme/pdu.h"
#include "nvme/target/controller.h"

namespace offcore::nvme {

class NvmeTcpTarget;
struct PollGroup;

class TargetConnection : public std::enable_shared_from_this<TargetConnection> {
 public:
  TargetConnection(int fd, PollGroup& group, NvmeTcpTarget& target);
  ~TargetConnection();

  void start();
  // Closes the socket and forgets the queue. Idempotent.
  void close(const std::string& why);
  // Completes a deferred AER (called on this connection's thread).
  void completeEvent(uint16_t cid, uint32_t dw0);

 private:
  enum class State { kAwaitIcReq, kReady, kClosed };
  struct PendingWrite {
    Command cmd;
    uint32_t received = 0;
    uint16_t ttag = 0;
  };

  void onEvents(uint32_t events);
  void readAvailable();
  void handlePdu(Pdu& pdu);
  void handleIcReq(const Pdu& pdu);
  void handleCapsule(Pdu& pdu);
  void handleH2CData(const Pdu& pdu);
  void handleFabrics(Command& cmd);
  void execute(Command cmd);
  void respond(uint16_t cid, const Completion& c, uint32_t transfer_len);
  void terminate(const FatalError& e);
  void send(std::vector<uint8_t> bytes);
  void flushOutput();
  void armKeepAlive();
  Digests digests() const { return Digests{header_digest_, data_digest_}; }

  int fd_;
  PollGroup& group_;
  NvmeTcpTarget& target_;
  State state_ = State::kAwaitIcReq;
  PduParser parser_{Role::kTarget};
  bool header_digest_ = false;
  bool data_digest_ = false;
  uint32_t host_alignment_ = 4;  // (HPDA + 1) * 4

  std::shared_ptr<Controller> controller_;
  uint16_t qid_ = 0;
  bool connected_ = false;
  uint32_t sq_size_ = 0;  // entries
  uint16_t sq_head_ = 0;
  bool sq_flow_disabled_ = false;
  std::string local_addr_;

  std::map<uint16_t, PendingWrite> pending_writes_;  // by CID
  uint16_t next_ttag_ = 0;

  std::deque<std::vector<uint8_t>> out_;
  size_t out_offset_ = 0;
  size_t out_bytes_ = 0;
  bool want_write_ = false;
  uint64_t keepalive_timer_ = 0;
};

}  // namespace offcore::nvme
