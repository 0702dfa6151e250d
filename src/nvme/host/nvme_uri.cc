#include "nvme/host/nvme_uri.h"

namespace offcore::nvme {

Result<NvmeUri> parseNvmeUri(const std::string& uri) {
  const std::string scheme = "nvme-tcp://";
  auto bad = [&](const std::string& why) {
    return makeError("bad URI '" + uri + "': " + why + " (use nvme-tcp://ADDR:PORT/NQN)");
  };
  if (uri.rfind(scheme, 0) != 0) return bad("it must start with nvme-tcp://");
  std::string rest = uri.substr(scheme.size());
  auto slash = rest.find('/');
  NvmeUri u;
  std::string hostport = slash == std::string::npos ? rest : rest.substr(0, slash);
  if (slash != std::string::npos) u.nqn = rest.substr(slash + 1);
  auto colon = hostport.rfind(':');
  u.address = colon == std::string::npos ? hostport : hostport.substr(0, colon);
  if (colon != std::string::npos) {
    std::string port = hostport.substr(colon + 1);
    if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
        std::stoi(port) > 65535) {
      return bad("bad port");
    }
    u.port = static_cast<uint16_t>(std::stoi(port));
  }
  if (u.address.empty()) return bad("no address");
  if (u.nqn.size() > 223) return bad("the NQN is longer than 223 bytes");
  return u;
}

}  // namespace offcore::nvme
