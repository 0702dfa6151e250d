#include "mesh/hbone/wire.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

namespace offcore::mesh::hbone {
namespace {

bool isIp(const std::string& s, bool v6) {
  // inet_pton reads a C string: an embedded NUL would hide a tail (fuzzer).
  if (s.empty() || s.size() >= INET6_ADDRSTRLEN || s.find('\0') != std::string::npos) return false;
  unsigned char buf[sizeof(in6_addr)];
  return ::inet_pton(v6 ? AF_INET6 : AF_INET, s.c_str(), buf) == 1;
}

}  // namespace

Result<HostPort> parseAuthority(const std::string& authority) {
  auto bad = [&] { return makeError("CONNECT authority '" + authority + "' is not ip:port"); };
  size_t colon = authority.rfind(':');
  if (colon == std::string::npos || colon + 1 == authority.size() || authority.size() - colon > 6) return bad();
  std::string host = authority.substr(0, colon);
  bool v6 = host.size() > 2 && host.front() == '[' && host.back() == ']';
  if (v6) host = host.substr(1, host.size() - 2);
  if (!isIp(host, v6)) return bad();
  unsigned port = 0;
  for (size_t i = colon + 1; i < authority.size(); ++i) {
    char c = authority[i];
    if (c < '0' || c > '9') return bad();
    port = port * 10 + static_cast<unsigned>(c - '0');
  }
  if (port == 0 || port > 65535) return bad();
  return HostPort{host, static_cast<uint16_t>(port)};
}

std::string formatAuthority(const std::string& ip, uint16_t port) {
  bool v6 = ip.find(':') != std::string::npos;
  return (v6 ? "[" + ip + "]" : ip) + ":" + std::to_string(port);
}

std::string forwardedFor(const std::string& ip) {
  if (ip.find(':') != std::string::npos) return "for=\"[" + ip + "]\"";
  return "for=" + ip;
}

std::string parseForwardedFor(const std::string& header) {
  size_t at = 0;
  while ((at = header.find("for=", at)) != std::string::npos) {
    if (at == 0 || header[at - 1] == ';' || header[at - 1] == ',' || header[at - 1] == ' ') break;
    at += 4;
  }
  if (at == std::string::npos) return {};
  std::string v = header.substr(at + 4);
  size_t end = v.find_first_of(";,");
  if (end != std::string::npos) v.resize(end);
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
  if (v.size() >= 2 && v.front() == '[' && v.back() == ']')
    return isIp(v.substr(1, v.size() - 2), true) ? v.substr(1, v.size() - 2) : "";
  return isIp(v, false) ? v : "";
}

std::string socketAddress(int fd, bool peer) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  int rv = peer ? ::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len)
                : ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  if (rv != 0) return {};
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
    return formatAuthority(buf, ntohs(a->sin_port));
  }
  if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    ::inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
    return formatAuthority(buf, ntohs(a->sin6_port));
  }
  return {};
}

}  // namespace offcore::mesh::hbone
