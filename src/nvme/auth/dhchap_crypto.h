// The cryptography DH-HMAC-CHAP needs, all through OpenSSL 3: SHA-2 digests,
// HMAC (EVP_MAC), random bytes and finite-field Diffie-Hellman in the RFC
// 7919 groups ffdhe2048..8192 (EVP_PKEY with named groups). Identifiers are
// the NVMe Base 2.0 ones (8.13.5: hash functions and DH group identifiers).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace offcore::nvme::auth {

using Bytes = std::vector<uint8_t>;

enum HashId : uint8_t { kHashNone = 0x00, kHashSha256 = 0x01, kHashSha384 = 0x02, kHashSha512 = 0x03 };
enum DhGroupId : uint8_t {
  kDhNull = 0x00,
  kDhFfdhe2048 = 0x01,
  kDhFfdhe3072 = 0x02,
  kDhFfdhe4096 = 0x03,
  kDhFfdhe6144 = 0x04,
  kDhFfdhe8192 = 0x05,
};

// Digest length in bytes, 0 for an unknown or "none" id.
size_t hashLength(uint8_t hash);
const char* hashName(uint8_t hash);  // "sha256", ... or nullptr
// Public value length in bytes (the group's prime size), 0 for null or unknown.
size_t dhPublicLength(uint8_t group);
const char* dhGroupName(uint8_t group);  // "null", "ffdhe2048", ... or nullptr
bool knownDhGroup(uint8_t group);

Status randomBytes(uint8_t* out, size_t len);
Result<Bytes> digest(uint8_t hash, const uint8_t* data, size_t len);

// HMAC over the concatenation of `parts`.
Result<Bytes> hmac(uint8_t hash, const Bytes& key, std::initializer_list<std::string_view> parts);
inline std::string_view asView(const Bytes& b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

// An ephemeral DH key pair in one FFDHE group.
class DhKeyPair {
 public:
  static Result<DhKeyPair> generate(uint8_t group);
  DhKeyPair(DhKeyPair&&) noexcept;
  DhKeyPair& operator=(DhKeyPair&&) noexcept;
  ~DhKeyPair();
  // The public value, big-endian, left-padded to the prime's size.
  Result<Bytes> publicValue() const;
  // g^xy mod p from the peer's public value, left-padded to the prime's size.
  // A value outside 1 < y < p-1 or of the wrong length is refused.
  Result<Bytes> sharedSecret(const Bytes& peer_public) const;
  uint8_t group() const { return group_; }

 private:
  DhKeyPair(uint8_t group, void* pkey) : group_(group), pkey_(pkey) {}
  uint8_t group_ = 0;
  void* pkey_ = nullptr;  // EVP_PKEY*
};

}  // namespace offcore::nvme::auth
