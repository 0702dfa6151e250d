// The CA channel between a mesh worker (hostile: it parses every byte of
// the node's traffic) and its keeper (which holds the CA): a unix socketpair
// the keeper hands the worker, carrying frames of a 4-byte big-endian length
// and that many bytes of JSON, at most kMaxCsrFrame. Version 1:
//   worker -> keeper {"v":1,"id":N,"op":"trust"}
//                    {"v":1,"id":N,"op":"sign","spiffeId":"spiffe://…","csr":"<PEM>","ttl":S}
//   keeper -> worker {"v":1,"id":N,"ok":true,"caPem":"…","trustDomain":"…"}        (trust)
//                    {"v":1,"id":N,"ok":true,"certPem":"…","issuedAt":T}          (sign)
//                    {"v":1,"id":N,"ok":false,"error":"<one line>"}
// A frame that does not decode ends the channel (docs/MESH.md, "Identity and mTLS").
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.h"

namespace offcore::mesh::tls {

constexpr size_t kMaxCsrFrame = 16 * 1024;
constexpr int kCsrWireVersion = 1;

struct CsrRequest {
  enum class Op { kTrust, kSign };
  Op op = Op::kSign;
  uint64_t id = 0;
  std::string spiffe_id;  // kSign
  std::string csr_pem;    // kSign
  int64_t ttl_s = 0;      // kSign: what the worker would like; the keeper caps it
};

struct CsrResponse {
  uint64_t id = 0;
  bool ok = false;
  std::string error;   // !ok
  std::string ca_pem;  // trust
  std::string trust_domain;
  std::string cert_pem;  // sign
  int64_t issued_at = 0;
};

// A whole frame (length prefix + payload); the payload must fit kMaxCsrFrame.
std::string encodeCsrRequest(const CsrRequest& r);
std::string encodeCsrResponse(const CsrResponse& r);
// One frame's payload. Anything unexpected (not JSON, another version, a
// missing or mistyped field, an oversized string) is an error.
Result<CsrRequest> decodeCsrRequest(std::string_view payload);
Result<CsrResponse> decodeCsrResponse(std::string_view payload);

// Gathers bytes from a stream into frames; never holds more than one
// maximal frame. A length of 0 or above kMaxCsrFrame is an error (the
// channel is then unusable).
class FrameReader {
 public:
  // Room left for the next read (0 = a whole frame is waiting in next()).
  size_t room() const { return kMaxCsrFrame + 4 - buf_.size(); }
  void append(const char* data, size_t n) { buf_.append(data, n); }
  // The next whole payload, nullopt when more bytes are needed.
  Result<std::optional<std::string>> next();

 private:
  std::string buf_;
};

}  // namespace offcore::mesh::tls
