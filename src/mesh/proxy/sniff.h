// Protocol detection on a connection's first bytes, for ports that declare
// no appProtocol: HTTP/2 (the client preface), HTTP/1.x (a method token and
// a space), anything else is L4. A server-first protocol sends nothing: the
// proxy gives up waiting after kSniffTimeout and treats it as L4.
#pragma once

#include <chrono>
#include <string_view>

namespace offcore::mesh {

enum class Sniffed { kNeedMore, kHttp1, kHttp2, kOther };

inline constexpr std::chrono::milliseconds kSniffTimeout{100};
inline constexpr size_t kSniffMaxBytes = 64;  // decide by then at the latest

Sniffed sniffProtocol(std::string_view first);

}  // namespace offcore::mesh
