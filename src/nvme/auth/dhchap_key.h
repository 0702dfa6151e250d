// DH-HMAC-CHAP secrets in the text form Linux, SPDK and nvme-cli share:
//   DHHC-1:<hh>:<base64 of secret || crc32(secret) little-endian>:
// hh is the hash that transforms the secret before use (00 none, 01 SHA-256,
// 02 SHA-384, 03 SHA-512); the secret is 32, 48 or 64 bytes. Also the two
// computations built on a secret (NVMe Base 2.0, 8.13.5.2 / 8.13.5.4):
//   transformed key = HMAC-hh(secret, NQN || "NVMe-over-Fabrics")
//   response = HMAC-H(transformed key, C' || le32 S || le16 T_ID || SC_C ||
//                     role || NQN1 || 0x00 || NQN2)
// with C' = HMAC-H(H(g^xy mod p), C) when a DH group is in use, else C.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "nvme/auth/dhchap_crypto.h"

namespace offcore::nvme::auth {

struct DhchapKey {
  uint8_t hash = kHashNone;  // the transform hash (the <hh> field)
  Bytes secret;              // 32, 48 or 64 bytes
};

// Parses the text form; checks the length and the CRC. Errors never echo the secret.
Result<DhchapKey> parseDhchapKey(std::string_view text);
std::string formatDhchapKey(const DhchapKey& key);
// A fresh random secret: 32 bytes for hh 00/01, 48 for 02, 64 for 03.
Result<DhchapKey> generateDhchapKey(uint8_t transform_hash);

Result<Bytes> transformKey(const DhchapKey& key, std::string_view nqn);

inline constexpr std::string_view kRoleHost = "HostHost";
inline constexpr std::string_view kRoleController = "Controller";

struct ResponseInput {
  uint8_t hash = kHashSha256;  // the negotiated hash
  const Bytes* transformed_key = nullptr;
  const Bytes* challenge = nullptr;  // hashLength(hash) bytes
  const Bytes* dh_secret = nullptr;  // null with the NULL DH group
  uint32_t seqnum = 0;
  uint16_t tid = 0;
  std::string_view role;  // kRoleHost or kRoleController
  std::string_view nqn1;  // host: hostnqn; controller: subnqn
  std::string_view nqn2;  // host: subnqn; controller: hostnqn
};
Result<Bytes> chapResponse(const ResponseInput& in);

// IEEE 802.3 CRC-32 (the one zlib computes), as the key format uses.
uint32_t crc32Ieee(const uint8_t* data, size_t len);

}  // namespace offcore::nvme::auth
