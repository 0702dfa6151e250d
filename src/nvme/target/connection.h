// One NVMe/TCP connection on the target: exactly one NVMe queue (admin or
// I/O). Parses PDUs, runs the IC handshake, moves command data (in-capsule
// or through R2T/H2CData), executes commands on its controller and sends
// C2HData and CapsuleResp PDUs. Lives on one poll group; every member runs
// on that group's thread.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "nvme/auth/dhchap_target.h"
#include "nvme/pdu.h"
#include "nvme/target/controller.h"
#include "nvme/target/io_buffer.h"

namespace offcore::nvme {

class NvmeTcpTarget;
struct PollGroup;

class TargetConnection : public std::enable_shared_from_this<TargetConnection> {
 public:
  // peer: the host's IP address, counted against the per-peer cap until close.
  TargetConnection(int fd, PollGroup& group, NvmeTcpTarget& target, std::string peer);
  ~TargetConnection();

  void start();
  // Closes the socket and forgets the queue. Idempotent.
  void close(const std::string& why);
  // Completes a deferred AER (called on this connection's thread).
  void completeEvent(uint16_t cid, uint32_t dw0);

 private:
  enum class State { kAwaitIcReq, kReady, kClosed };
  // A write whose data comes by R2T. Its buffer exists only once its R2T is
  // sent; at most limits.max_r2t_per_queue are, the rest wait in r2t_queue_.
  struct PendingWrite {
    Command cmd;
    uint32_t received = 0;
    uint16_t ttag = 0;
    bool r2t_sent = false;
  };

  void onEvents(uint32_t events);
  void readAvailable();
  // Parses what is buffered; false when the connection closed or paused.
  bool drainParser();
  bool outputFull() const;
  void updateInterest();
  void sendNextR2Ts();
  void armConnectTimeout();
  void handlePdu(Pdu& pdu);
  void handleIcReq(const Pdu& pdu);
  void handleCapsule(Pdu& pdu);
  void handleH2CData(Pdu& pdu);
  std::vector<uint8_t> takeWriteBuffer(uint32_t len);
  void recycleWriteBuffer(std::vector<uint8_t>&& buffer);
  void handleFabrics(Command& cmd);
  void handleAuth(Command& cmd);
  // Connected, but the host still has to authenticate this queue.
  bool authPending() const { return auth_ && !auth_->authenticated(); }
  void armAuthDeadline(uint32_t ms, const char* why);
  void execute(Command& cmd);
  void respond(uint16_t cid, const Completion& c, uint32_t transfer_len);
  void terminate(const FatalError& e);
  // completion: the PDU that completes a command (CapsuleResp, or the last
  // C2HData with SUCCESS); until it is written the command is outstanding.
  void send(std::vector<uint8_t> bytes, bool completion = false);
  void flushOutput();
  void deferToSyncWorker(const Command& cmd);
  void finishDeferred(uint16_t cid, const Completion& c);
  struct ReplyBatch;
  void flushPending();  // flushOutput when there is output and the socket is not full
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
  std::string peer_;
  std::string remote_;  // address:port of the host, for logs

  std::map<uint16_t, PendingWrite> pending_writes_;  // by CID
  std::deque<uint16_t> r2t_queue_;                   // CIDs of writes waiting for an R2T slot
  uint32_t r2t_in_flight_ = 0;
  uint16_t next_ttag_ = 0;
  std::vector<std::vector<uint8_t>> spare_buffers_;  // finished writes' buffers, for the next R2Ts

  // One PDU to send: `bytes`, then (a C2HData from a read) `ref_len` bytes
  // of the read's buffer at `ref_off` and its data digest, sent from there.
  struct OutPdu {
    std::vector<uint8_t> bytes;
    bool completion = false;
    std::shared_ptr<const IoBuffer> ref;
    size_t ref_off = 0, ref_len = 0;
    uint8_t ddgst[4] = {};
    uint8_t ddgst_len = 0;
    size_t size() const { return bytes.size() + ref_len + ddgst_len; }
    // Its parts from byte `skip` on, as iovecs (at most 3); returns how many.
    int iovecs(size_t skip, iovec* iov) const;
  };
  void send(OutPdu pdu);
  std::deque<OutPdu> out_;
  size_t out_offset_ = 0;
  size_t out_bytes_ = 0;
  uint32_t unsent_completions_ = 0;
  bool want_write_ = false;
  int batching_ = 0;
  std::set<uint16_t>
      deferred_cids_;  // commands on the sync worker (Flush)       // > 0: replies wait for the end of the batch (ReplyBatch)
  bool paused_ = false;    // not reading: unsent output above the bound
  uint32_t interest_ = 0;  // the epoll mask in force
  uint64_t keepalive_timer_ = 0;
  uint64_t connect_timer_ = 0;
  std::unique_ptr<auth::TargetAuthSession> auth_;  // set when the host must authenticate
  uint64_t auth_timer_ = 0;
};

}  // namespace offcore::nvme
