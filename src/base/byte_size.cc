#include "base/byte_size.h"

#include <cctype>
#include <limits>

namespace offcore {

Result<uint64_t> parseByteSize(const std::string& text) {
  if (text.empty()) return makeError("empty size (write it like 512M or 2G)");
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  size_t i = 0;
  uint64_t v = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    uint64_t digit = static_cast<uint64_t>(text[i] - '0');
    if (v > (kMax - digit) / 10) return makeError("size '" + text + "' is too large");
    v = v * 10 + digit;
    ++i;
  }
  if (i == 0) return makeError("bad size '" + text + "' (write it like 512M or 2G)");
  std::string unit = text.substr(i);
  unsigned shift = 0;
  if (unit.empty() || unit == "B")
    shift = 0;
  else if (unit == "K" || unit == "KiB" || unit == "k")
    shift = 10;
  else if (unit == "M" || unit == "MiB")
    shift = 20;
  else if (unit == "G" || unit == "GiB")
    shift = 30;
  else if (unit == "T" || unit == "TiB")
    shift = 40;
  else
    return makeError("bad size unit '" + unit + "' in '" + text + "' (use K, M, G or T)");
  if (v > (kMax >> shift)) return makeError("size '" + text + "' is too large");
  return v << shift;
}

}  // namespace offcore
