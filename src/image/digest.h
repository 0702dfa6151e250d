// SHA-256 digests in OCI form ("sha256:<hex>"), through OpenSSL's EVP API.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "base/result.h"

namespace offcore::oci {

std::string sha256Digest(const void* data, size_t len);
inline std::string sha256Digest(const std::string& s) { return sha256Digest(s.data(), s.size()); }
Result<std::string> sha256DigestOfFile(const std::string& path);

// Incremental hashing for bodies that arrive in pieces (downloads).
class Sha256Stream {
 public:
  Sha256Stream();
  ~Sha256Stream();
  Sha256Stream(const Sha256Stream&) = delete;
  Sha256Stream& operator=(const Sha256Stream&) = delete;
  void update(const void* data, size_t len);
  std::string finish();  // "sha256:<hex>"; the stream is spent afterwards
 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

}  // namespace offcore::oci
