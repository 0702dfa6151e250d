// NVMe/TCP PDU framing: a streaming parser that validates every header field
// the receiver can check, and builders for each PDU type. Both sides (the
// target and the initiator) use them; the role decides which PDU types are
// legal to receive.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "nvme/spec.h"

namespace offcore::nvme {

enum class Role { kTarget, kHost };  // who is receiving

struct Sqe {
  uint8_t b[kSqeSize] = {};
  uint8_t opcode() const { return b[0]; }
  uint8_t flags() const { return b[1]; }
  uint16_t cid() const { return getLe16(b + 2); }
  uint32_t nsid() const { return getLe32(b + 4); }
  uint8_t fctype() const { return b[4]; }
  uint32_t cdw(int n) const { return getLe32(b + 4 * n); }  // cdw(10) .. cdw(15)
  uint64_t sglAddress() const { return getLe64(b + kSqeSgl); }
  uint32_t sglLength() const { return getLe32(b + kSqeSgl + 8); }
  uint8_t sglId() const { return b[kSqeSgl + 15]; }
};

struct Cqe {
  uint8_t b[kCqeSize] = {};
  static Cqe make(uint16_t cid, uint16_t status, uint32_t dw0 = 0, uint16_t sqhd = 0, uint16_t sqid = 0,
                  uint32_t dw1 = 0);
  uint32_t dw0() const { return getLe32(b); }
  uint32_t dw1() const { return getLe32(b + 4); }
  uint16_t sqhd() const { return getLe16(b + 8); }
  uint16_t sqid() const { return getLe16(b + 10); }
  uint16_t cid() const { return getLe16(b + 12); }
  // (SCT << 8) | SC, without DNR/More/CRD.
  uint16_t status() const { return static_cast<uint16_t>((getLe16(b + 14) >> 1) & 0x7FF); }
  bool dnr() const { return (getLe16(b + 14) >> 15) & 1; }
};

struct Pdu {
  uint8_t type = 0;
  uint8_t flags = 0;
  uint8_t hlen = 0;
  uint8_t pdo = 0;
  uint32_t plen = 0;
  std::vector<uint8_t> header;  // hlen bytes: common header + PDU-specific header
  std::vector<uint8_t> data;    // the data, without padding or digest
  bool data_digest_ok = true;   // false: the data digest did not match (not fatal)
};

// A fatal transport error: the receiver sends a TermReq and closes.
struct FatalError {
  uint16_t fes = 0;
  uint32_t fei = 0;
  std::vector<uint8_t> header;  // the offending header, for the TermReq
  std::string reason;           // for logs
};

struct ParserLimits {
  bool header_digest = false;  // negotiated by IC; IC PDUs themselves never carry digests
  bool data_digest = false;
  uint32_t data_alignment = 4;       // the receiver's required PDO alignment, bytes ((CPDA|HPDA)+1)*4
  uint32_t max_capsule_data = 8192;  // in-capsule data the receiver accepts
  uint32_t max_data_pdu = 131072;    // H2C/C2H data per PDU the receiver accepts
};

class PduParser {
 public:
  explicit PduParser(Role role) : role_(role) {}
  void setLimits(const ParserLimits& limits) { limits_ = limits; }
  const ParserLimits& limits() const { return limits_; }

  // Appends received bytes.
  void feed(const uint8_t* data, size_t len);
  // Extracts the next complete PDU. nullopt with no error: need more bytes.
  // A FatalError is sticky: the connection must be terminated.
  std::optional<Pdu> next(std::optional<FatalError>& error);
  size_t buffered() const { return buf_.size() - pos_; }
  // Hands back a finished PDU's data buffer: the next data PDU is copied into
  // it instead of a fresh allocation (one buffer kept, at most the largest
  // data PDU the limits admit).
  void recycle(std::vector<uint8_t>&& data) { spare_ = std::move(data); }

 private:
  std::optional<FatalError> checkHeader(const uint8_t* h) const;
  Role role_;
  ParserLimits limits_;
  std::vector<uint8_t> buf_;
  size_t pos_ = 0;
  std::vector<uint8_t> spare_;  // see recycle()
};

// ---- builders: each returns the complete wire bytes of one PDU ----------------
struct Digests {
  bool header = false;
  bool data = false;
};

std::vector<uint8_t> buildIcReq(uint8_t hpda, uint8_t dgst, uint32_t maxr2t);
std::vector<uint8_t> buildIcResp(uint8_t cpda, uint8_t dgst, uint32_t maxh2cdata);
// alignment: the receiver's PDO alignment in bytes (controller's CPDA for capsules).
std::vector<uint8_t> buildCapsuleCmd(const Sqe& sqe, const uint8_t* data, size_t len, Digests d, uint32_t alignment);
std::vector<uint8_t> buildCapsuleResp(const Cqe& cqe, Digests d);
std::vector<uint8_t> buildData(PduType type, uint16_t cccid, uint16_t ttag, uint32_t offset, const uint8_t* data,
                               size_t len, bool last, bool success, Digests d, uint32_t alignment);
// The part of a data PDU (C2HData, H2CData) before its `len` data bytes,
// for a sender that writes the data from its own buffer: then the data, and
// with d.data the 4-byte little-endian dataDigest of it. buildData is
// buildDataHead + data + digest.
std::vector<uint8_t> buildDataHead(PduType type, uint16_t cccid, uint16_t ttag, uint32_t offset, size_t len, bool last,
                                   bool success, Digests d, uint32_t alignment);
uint32_t dataDigest(const uint8_t* data, size_t len);  // CRC32C
std::vector<uint8_t> buildR2T(uint16_t cccid, uint16_t ttag, uint32_t offset, uint32_t len, Digests d);
std::vector<uint8_t> buildTermReq(PduType type, uint16_t fes, uint32_t fei, const std::vector<uint8_t>& errored);

// Expected HLEN for a PDU type, 0 for an unknown type.
uint8_t expectedHlen(uint8_t type);

}  // namespace offcore::nvme
