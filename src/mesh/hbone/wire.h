// The small HBONE wire helpers: ":authority" and "forwarded" headers,
// socket addresses as "ip:port".
#pragma once

#include <cstdint>
#include <string>

#include "base/result.h"

namespace offcore::mesh::hbone {

struct HostPort {
  std::string ip;
  uint16_t port = 0;
};

// "10.0.0.5:80" or "[fd00::5]:80"; the host must be an IP literal.
Result<HostPort> parseAuthority(const std::string& authority);
std::string formatAuthority(const std::string& ip, uint16_t port);
// RFC 7239: `for=10.0.0.5` / `for="[fd00::5]"`.
std::string forwardedFor(const std::string& ip);
// The first for= of a forwarded header, as a bare IP; "" when absent/invalid.
std::string parseForwardedFor(const std::string& header);
// The socket's local or peer address as "ip:port" ("" on error).
std::string socketAddress(int fd, bool peer);

}  // namespace offcore::mesh::hbone
