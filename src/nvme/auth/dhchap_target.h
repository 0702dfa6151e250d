// The controller's side of one DH-HMAC-CHAP transaction on one queue
// (NVMe Base 2.0, 8.13.5): Negotiate -> Challenge -> Reply -> Success1
// [-> Success2]. Transport-free: the queue hands it each Authentication
// Send's data and asks it for each Authentication Receive's. A protocol error
// is answered the spec's way: the Send completes successfully and the next
// Receive returns AUTH_Failure1 with the reason; the queue is then failed.
#pragma once

#include <optional>
#include <string>

#include "nvme/auth/dhchap_key.h"
#include "nvme/auth/dhchap_messages.h"
#include "nvme/pdu.h"

namespace offcore::nvme::auth {

// What a subsystem knows about one allowed host.
struct DhchapSecrets {
  DhchapKey host;                 // proves the host to us
  std::optional<DhchapKey> ctrl;  // proves us to the host (bidirectional), if it asks
};

// The controller's preference; the first one the host also offers is chosen.
// The strongest hash, but ffdhe2048 before the larger groups: connecting an
// association of three queues (both sides on one machine, loopback) measured
// 1-4 ms with null, 10-15 ms with ffdhe2048, 30-60 ms with ffdhe3072,
// 60-100 ms with ffdhe4096, 200-290 ms with ffdhe6144 and 510-640 ms with
// ffdhe8192, paid on every (re)connect and on a poll group's thread. The
// secrets are 32+ random bytes, so the DH step is not what stops offline
// guessing.
struct DhchapPolicy {
  std::vector<uint8_t> hashes{kHashSha512, kHashSha384, kHashSha256};
  std::vector<uint8_t> dhgroups{kDhFfdhe2048, kDhFfdhe3072, kDhFfdhe4096, kDhFfdhe6144, kDhFfdhe8192, kDhNull};
};

class TargetAuthSession {
 public:
  TargetAuthSession(DhchapSecrets secrets, std::string hostnqn, std::string subnqn, DhchapPolicy policy = {});

  // An Authentication Send on this queue; returns the NVMe status.
  uint16_t send(const Sqe& sqe, const Bytes& data);
  struct Received {
    uint16_t status = 0;
    Bytes data;
  };
  // An Authentication Receive; the data is at most the command's AL.
  Received receive(const Sqe& sqe);

  bool authenticated() const { return authenticated_; }
  bool failed() const { return state_ == State::kFailed; }
  const std::string& lastError() const { return last_error_; }
  uint8_t hash() const { return hash_; }
  uint8_t dhgroup() const { return dhgroup_; }

 private:
  enum class State { kNegotiate, kChallenge, kReply, kSuccess1, kSuccess2, kFailure1, kFailed, kDone };
  void fail1(uint8_t reason, const std::string& why);
  void onNegotiate(const Negotiate& m);
  void onReply(const Reply& m);

  DhchapSecrets secrets_;
  std::string hostnqn_, subnqn_;
  DhchapPolicy policy_;
  State state_ = State::kNegotiate;
  bool authenticated_ = false;
  uint16_t tid_ = 0;
  uint8_t hash_ = 0, dhgroup_ = 0;
  uint8_t fail_reason_ = 0;
  uint32_t seqnum_ = 0;
  Bytes c1_;
  std::optional<DhKeyPair> dh_;
  bool bidirectional_ = false;
  Bytes ctrl_response_;
  std::string last_error_;
};

}  // namespace offcore::nvme::auth
