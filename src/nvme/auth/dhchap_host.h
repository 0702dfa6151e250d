// The host's side of one DH-HMAC-CHAP transaction on one queue, run right
// after a Connect whose response asks for it (AUTHREQ.ATR). The queue is
// reached through AuthTransport (an Authentication Send / Receive each), so
// the exchange is testable without sockets.
#pragma once

#include <optional>
#include <string>
#include <utility>

#include "nvme/auth/dhchap_key.h"
#include "nvme/auth/dhchap_messages.h"
#include "nvme/pdu.h"

namespace offcore::nvme::auth {

struct HostAuthConfig {
  DhchapKey host;                 // --dhchap-secret
  std::optional<DhchapKey> ctrl;  // --dhchap-ctrl-secret: also authenticate the controller
  // What we offer in AUTH_Negotiate; the controller picks.
  std::vector<uint8_t> hashes{kHashSha256, kHashSha384, kHashSha512};
  std::vector<uint8_t> dhgroups{kDhNull, kDhFfdhe2048, kDhFfdhe3072, kDhFfdhe4096, kDhFfdhe6144, kDhFfdhe8192};
};

class AuthTransport {
 public:
  virtual ~AuthTransport() = default;
  // Returns the command's NVMe status.
  virtual Result<uint16_t> send(const Bytes& message) = 0;
  virtual Result<std::pair<uint16_t, Bytes>> receive(uint32_t allocation_length) = 0;
};

// The SQEs of Authentication Send (TL bytes out) and Receive (AL bytes in).
Sqe authSendSqe(uint32_t tl);
Sqe authReceiveSqe(uint32_t al);

struct HostAuthResult {
  uint8_t hash = 0;
  uint8_t dhgroup = 0;
  bool bidirectional = false;
};
// One whole transaction; an error says which side refused and why.
Result<HostAuthResult> authenticateQueue(AuthTransport& transport, const HostAuthConfig& config,
                                         const std::string& hostnqn, const std::string& subnqn, uint16_t tid);

}  // namespace offcore::nvme::auth
