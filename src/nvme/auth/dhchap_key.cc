#include "nvme/auth/dhchap_key.h"

#include <openssl/evp.h>

#include "nvme/spec.h"

namespace offcore::nvme::auth {
namespace {

constexpr std::string_view kPrefix = "DHHC-1:";

bool validSecretLength(size_t n) { return n == 32 || n == 48 || n == 64; }

int hexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

uint32_t crc32Ieee(const uint8_t* data, size_t len) {
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < len; ++i) {
    crc ^= data[i];
    for (int b = 0; b < 8; ++b) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

Result<DhchapKey> parseDhchapKey(std::string_view text) {
  auto bad = [](const std::string& why) {
    return makeError("not a DH-HMAC-CHAP secret (" + why + "; expected DHHC-1:<hh>:<base64>:)");
  };
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) text.remove_suffix(1);
  if (text.size() > 256) return bad("longer than 256 characters");
  if (text.substr(0, kPrefix.size()) != kPrefix) return bad("no DHHC-1: prefix");
  text.remove_prefix(kPrefix.size());
  if (text.size() < 3 || text[2] != ':') return bad("no two-digit hash field");
  int h1 = hexDigit(text[0]), h0 = hexDigit(text[1]);
  if (h1 < 0 || h0 < 0) return bad("the hash field is not hex");
  DhchapKey key;
  int hash = h1 * 16 + h0;
  if (hash > kHashSha512) return bad("unknown hash " + std::to_string(hash));
  key.hash = static_cast<uint8_t>(hash);
  text.remove_prefix(3);
  if (text.empty() || text.back() != ':') return bad("no closing ':'");
  text.remove_suffix(1);
  if (text.empty() || text.size() % 4 != 0) return bad("the base64 part is not a multiple of 4 characters");
  for (char c : text) {
    bool ok =
        (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/' || c == '=';
    if (!ok) return bad("invalid base64 character");
  }
  size_t pad = 0;
  while (pad < 2 && pad < text.size() && text[text.size() - 1 - pad] == '=') ++pad;
  Bytes raw(text.size() / 4 * 3);
  int n =
      EVP_DecodeBlock(raw.data(), reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
  if (n < 0 || static_cast<size_t>(n) < pad) return bad("invalid base64");
  raw.resize(static_cast<size_t>(n) - pad);
  if (raw.size() < 4 || !validSecretLength(raw.size() - 4)) {
    return bad("the secret is " + std::to_string(raw.size() < 4 ? 0 : raw.size() - 4) + " bytes, not 32, 48 or 64");
  }
  size_t len = raw.size() - 4;
  if (getLe32(raw.data() + len) != crc32Ieee(raw.data(), len)) return bad("CRC mismatch");
  key.secret.assign(raw.begin(), raw.begin() + static_cast<long>(len));
  return key;
}

std::string formatDhchapKey(const DhchapKey& key) {
  Bytes raw = key.secret;
  raw.resize(raw.size() + 4);
  putLe32(raw.data() + key.secret.size(), crc32Ieee(key.secret.data(), key.secret.size()));
  std::string b64(4 * ((raw.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()), raw.data(), static_cast<int>(raw.size()));
  b64.resize(static_cast<size_t>(n));
  char hh[4];
  std::snprintf(hh, sizeof hh, "%02x", key.hash);
  return std::string(kPrefix) + hh + ":" + b64 + ":";
}

Result<DhchapKey> generateDhchapKey(uint8_t transform_hash) {
  if (transform_hash > kHashSha512) return makeError("unknown hash " + std::to_string(transform_hash));
  DhchapKey key;
  key.hash = transform_hash;
  key.secret.resize(transform_hash == kHashNone ? 32 : hashLength(transform_hash));
  OC_TRY(randomBytes(key.secret.data(), key.secret.size()));
  return key;
}

Result<Bytes> transformKey(const DhchapKey& key, std::string_view nqn) {
  if (key.hash == kHashNone) return key.secret;
  return hmac(key.hash, key.secret, {nqn, "NVMe-over-Fabrics"});
}

Result<Bytes> chapResponse(const ResponseInput& in) {
  const size_t hl = hashLength(in.hash);
  if (hl == 0) return makeError("unknown hash id " + std::to_string(in.hash));
  if (!in.transformed_key || !in.challenge || in.challenge->size() != hl) {
    return makeError("challenge length does not match the hash");
  }
  Bytes challenge = *in.challenge;
  if (in.dh_secret) {
    OC_ASSIGN_OR_RETURN(Bytes hashed, digest(in.hash, in.dh_secret->data(), in.dh_secret->size()));
    OC_ASSIGN_OR_RETURN(challenge, hmac(in.hash, hashed, {asView(challenge)}));
  }
  uint8_t seq[4], tid[2];
  putLe32(seq, in.seqnum);
  putLe16(tid, in.tid);
  const char zero = 0;
  return hmac(in.hash, *in.transformed_key,
              {asView(challenge), std::string_view(reinterpret_cast<char*>(seq), 4),
               std::string_view(reinterpret_cast<char*>(tid), 2), std::string_view(&zero, 1), in.role, in.nqn1,
               std::string_view(&zero, 1), in.nqn2});
}

}  // namespace offcore::nvme::auth
