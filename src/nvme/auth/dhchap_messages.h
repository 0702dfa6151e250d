// The in-band authentication messages (NVMe Base 2.0, 8.13.6), as pure
// parsers and builders: AUTH_Negotiate, DH-HMAC-CHAP_Challenge, _Reply,
// _Success1, _Success2 and AUTH_Failure1/2. Every message starts with
// auth_type(0) auth_id(1) reserved(2..3) t_id(4..5), little-endian.
//
//   Negotiate (8 + 64*NAPD): sc_c(6) napd(7), then descriptors:
//     authid(0) rsvd(1) halen(2) dhlen(3) hash ids(4..33) dh group ids(34..63)
//   Challenge (16 + HL + DHVLEN): hl(6) hashid(8) dhgid(9) dhvlen(10..11) seqnum(12..15) C1, DH value
//   Reply (16 + 2*HL + DHVLEN): hl(6) cvalid(8) dhvlen(10..11) seqnum(12..15) R1, C2, DH value
//   Success1 (16 [+ HL]): hl(6) rvalid(8) R2 when rvalid
//   Success2 (16)
//   Failure1/2 (8): rescode(6) rescode_exp(7)
#pragma once

#include <cstdint>
#include <variant>
#include <vector>

#include "nvme/auth/dhchap_crypto.h"

namespace offcore::nvme::auth {

enum AuthType : uint8_t { kAuthTypeCommon = 0x00, kAuthTypeDhchap = 0x01 };
enum AuthMessageId : uint8_t {
  kMsgNegotiate = 0x00,
  kMsgChallenge = 0x01,
  kMsgReply = 0x02,
  kMsgSuccess1 = 0x03,
  kMsgSuccess2 = 0x04,
  kMsgFailure2 = 0xF0,
  kMsgFailure1 = 0xF1,
};
inline constexpr uint8_t kAuthIdDhchap = 0x01;    // protocol descriptor AUTHID for DH-HMAC-CHAP
inline constexpr uint8_t kFailureRescode = 0x01;  // "authentication failure"
enum FailureReason : uint8_t {                    // rescode explanations
  kReasonFailed = 0x01,
  kReasonProtocolUnusable = 0x02,
  kReasonScMismatch = 0x03,
  kReasonHashUnusable = 0x04,
  kReasonDhGroupUnusable = 0x05,
  kReasonIncorrectPayload = 0x06,
  kReasonIncorrectMessage = 0x07,
};
const char* failureReasonText(uint8_t reason);

inline constexpr size_t kAuthHeaderSize = 16;
inline constexpr size_t kNegotiateDescriptorSize = 64;
inline constexpr size_t kMaxIdList = 30;
// Largest message either side sends or accepts: a Reply with SHA-512 and
// ffdhe8192 is 16 + 128 + 1024 bytes; Linux and SPDK use 4 KiB buffers.
inline constexpr size_t kMaxAuthMessage = 4096;

struct Negotiate {
  uint16_t tid = 0;
  uint8_t sc_c = 0;
  bool has_dhchap = false;  // a DH-HMAC-CHAP descriptor is among the NAPD
  std::vector<uint8_t> hashes;
  std::vector<uint8_t> dhgroups;
};
struct Challenge {
  uint16_t tid = 0;
  uint8_t hash = 0;
  uint8_t dhgroup = 0;
  uint32_t seqnum = 0;
  Bytes cval;
  Bytes dhv;
};
struct Reply {
  uint16_t tid = 0;
  uint8_t cvalid = 0;
  uint32_t seqnum = 0;
  Bytes response;
  Bytes cval;  // all zero unless cvalid
  Bytes dhv;
};
struct Success1 {
  uint16_t tid = 0;
  uint8_t hl = 0;
  bool rvalid = false;
  Bytes rval;
};
struct Success2 {
  uint16_t tid = 0;
};
struct Failure {
  uint16_t tid = 0;
  uint8_t id = kMsgFailure1;  // kMsgFailure1 (controller) or kMsgFailure2 (host)
  uint8_t rescode = kFailureRescode;
  uint8_t reason = kReasonFailed;
};
using AuthMessage = std::variant<Negotiate, Challenge, Reply, Success1, Success2, Failure>;

// Parses one message. `exact`: the length must be the message's own (what a
// controller requires of a host); otherwise trailing bytes up to
// kMaxAuthMessage are padding (a controller may fill the host's whole
// allocation). On error, Error::code is the failure reason to report
// (kReasonIncorrectPayload or kReasonIncorrectMessage).
Result<AuthMessage> parseAuthMessage(const uint8_t* data, size_t len, bool exact);

Bytes buildNegotiate(const Negotiate& m);
Bytes buildChallenge(const Challenge& m);
Bytes buildReply(const Reply& m);
Bytes buildSuccess1(const Success1& m);
Bytes buildSuccess2(const Success2& m);
Bytes buildFailure(const Failure& m);

}  // namespace offcore::nvme::auth
