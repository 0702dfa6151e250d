#include "mesh/net/sock_addr.h"

#include <arpa/inet.h>

#include <cstring>

namespace offcore::mesh {

Result<SockAddr> parseSockAddr(const std::string& ip_in, uint16_t port) {
  std::string ip = ip_in;
  if (ip.size() > 2 && ip.front() == '[' && ip.back() == ']') ip = ip.substr(1, ip.size() - 2);
  SockAddr out;
  auto* in = reinterpret_cast<sockaddr_in*>(&out.storage);
  if (::inet_pton(AF_INET, ip.c_str(), &in->sin_addr) == 1) {
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    out.len = sizeof(sockaddr_in);
    return out;
  }
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&out.storage);
  if (::inet_pton(AF_INET6, ip.c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    out.len = sizeof(sockaddr_in6);
    return out;
  }
  return makeError("'" + ip_in + "' is not an IPv4 or IPv6 address; give a literal address", EINVAL);
}

}  // namespace offcore::mesh
