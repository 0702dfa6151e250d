// Parsing "ip" + port into a sockaddr for the mesh's sockets (IPv4 and IPv6).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>

#include "base/result.h"

namespace offcore::mesh {

struct SockAddr {
  sockaddr_storage storage{};
  socklen_t len = 0;
  int family() const { return storage.ss_family; }
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
};

// "10.0.0.1" or "fd00::1" (brackets allowed) -> sockaddr.
Result<SockAddr> parseSockAddr(const std::string& ip, uint16_t port);

}  // namespace offcore::mesh
