#include "mesh/proxy/sniff.h"

#include <array>

namespace offcore::mesh {

namespace {

constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
constexpr std::array<std::string_view, 9> kMethods = {"GET ",     "HEAD ",  "POST ",  "PUT ",    "DELETE ",
                                                      "OPTIONS ", "PATCH ", "TRACE ", "CONNECT "};

}  // namespace

Sniffed sniffProtocol(std::string_view first) {
  if (first.empty()) return Sniffed::kNeedMore;
  size_t n = std::min(first.size(), kPreface.size());
  if (first.substr(0, n) == kPreface.substr(0, n)) {
    return first.size() >= kPreface.size() ? Sniffed::kHttp2 : Sniffed::kNeedMore;
  }
  bool prefix_of_some = false;
  for (std::string_view m : kMethods) {
    size_t k = std::min(first.size(), m.size());
    if (first.substr(0, k) != m.substr(0, k)) continue;
    if (first.size() >= m.size()) return Sniffed::kHttp1;
    prefix_of_some = true;
  }
  if (prefix_of_some && first.size() < kSniffMaxBytes) return Sniffed::kNeedMore;
  return Sniffed::kOther;
}

}  // namespace offcore::mesh
