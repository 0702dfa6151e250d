// Standard base64 (RFC 4648, with padding), on OpenSSL's codec.
#pragma once

#include <string>

#include "base/result.h"

namespace offcore {

std::string base64Encode(const std::string& in);
// Refuses a length that is not a multiple of 4, characters outside the
// alphabet and input longer than max_in (a peer's bytes are bounded).
Result<std::string> base64Decode(const std::string& in, size_t max_in = 64 * 1024 * 1024);

}  // namespace offcore
