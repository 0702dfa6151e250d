// A registry's 401 answer and its token service's JSON are untrusted: any
// bytes must give a challenge or token, or an error.
#include <cstddef>
#include <cstdint>
#include <string>

#include "base/base64.h"
#include "image/registry_auth.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string s(reinterpret_cast<const char*>(data), size);
  (void)offcore::oci::parseAuthChallenge(s);
  auto t = offcore::oci::parseTokenResponse(s);
  if (t.ok() && t->token.find('\n') != std::string::npos) __builtin_trap();
  (void)offcore::base64Decode(s, 64 * 1024);
  return 0;
}
