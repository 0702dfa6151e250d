// The one parser for byte sizes on command lines, in configs and in API
// bodies: "4096", "512K", "512M", "2G", "1T" (KiB/MiB/GiB/TiB also), binary
// units. Negative numbers, fractions and values past 2^64 - 1 are errors.
#pragma once

#include <cstdint>
#include <string>

#include "base/result.h"

namespace offcore {

Result<uint64_t> parseByteSize(const std::string& text);

}  // namespace offcore
