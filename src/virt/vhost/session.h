// Session: the protocol state of one front-end connection — negotiated
// features, the memory table, the dirty log and the vrings — and what each
// request does to it. No sockets here: the server reads a Message, hands it
// to handle(), and writes back the reply it returns.
//
// Owner: the server's control thread. Every change to the memory table, the
// log or the features stops the queues first and restarts them after.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "base/result.h"
#include "virt/vhost/device.h"
#include "virt/vhost/dirty_log.h"
#include "virt/vhost/guest_memory.h"
#include "virt/vhost/inflight.h"
#include "virt/vhost/protocol.h"
#include "virt/vhost/vring.h"

namespace offcore::virt {

// The transport features every back end offers on top of the device's.
uint64_t transportFeatures();
// The protocol features this back end offers.
uint64_t offeredProtocolFeatures();

class Session {
 public:
  explicit Session(VhostDevice& device);
  ~Session();  // stops every queue
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Applies one request. Returns the bytes to send back (empty: no reply),
  // or an error after which the connection must be dropped.
  Result<std::vector<uint8_t>> handle(Message msg);

  // Stops every queue (each finishes the chain in hand); used on shutdown.
  void stopAll();

  // The fd to send with the reply handle() just returned (GET_INFLIGHT_FD),
  // invalid for every other request.
  UniqueFd takeReplyFd() { return std::move(replyFd_); }

 private:
  Result<std::vector<uint8_t>> dispatch(Message& msg);
  Result<Vring*> vring(uint32_t index);
  Status startIfReady(Vring& q);
  Status startAllReady();
  DirtyLog* activeLog() const;
  // GET_FEATURES: the device's, the transport's, and RING_PACKED when the
  // device takes packed rings.
  uint64_t offeredFeatures() const;
  Result<std::vector<uint8_t>> setMemTable(Message& msg);
  Result<std::vector<uint8_t>> setLogBase(Message& msg);
  Result<std::vector<uint8_t>> setVringFd(Message& msg);
  Result<std::vector<uint8_t>> getConfig(const Message& msg);
  Result<std::vector<uint8_t>> getInflightFd(const Message& msg);
  Result<std::vector<uint8_t>> setInflightFd(Message& msg);
  void attachInflight();

  VhostDevice& device_;
  uint64_t features_ = 0;
  uint64_t protocolFeatures_ = 0;
  std::unique_ptr<GuestMemory> memory_;
  std::unique_ptr<DirtyLog> log_;
  std::unique_ptr<InflightArea> inflight_;
  UniqueFd replyFd_;
  std::vector<std::unique_ptr<Vring>> vrings_;
};

}  // namespace offcore::virt
