#include "image/gateway_volumes.h"

#include "nvme/auth/dhchap_key.h"
#include "nvme/host/host_identity.h"

namespace offcore {

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

std::string nodeHostsPattern() { return nvme::nodeHostNqn("") + "*"; }

namespace {

Result<std::shared_ptr<nvme::NvmeTcpHost>> connectAs(const std::string& uri, const std::string& host_nqn,
                                                     const std::array<uint8_t, 16>& host_id,
                                                     std::chrono::milliseconds io_timeout,
                                                     const std::string& dhchap_secret = "") {
  OC_ASSIGN_OR_RETURN(auto u, parseNvmeUri(uri));
  if (u.nqn.empty()) return makeError("bad URI '" + uri + "': no NQN");
  nvme::HostOptions o;
  o.host_nqn = host_nqn;
  o.host_id = host_id;
  o.io_queues = 2;
  o.queue_depth = 32;
  o.io_timeout = io_timeout;
  if (!dhchap_secret.empty()) {
    OC_ASSIGN_OR_RETURN(auto key, nvme::auth::parseDhchapKey(dhchap_secret));
    o.dhchap_secret = std::move(key);
  }
  return nvme::NvmeTcpHost::connect(u.address, u.port, u.nqn, o);
}

}  // namespace

Result<std::shared_ptr<nvme::NvmeTcpHost>> connectVolume(const std::string& uri, const std::string& node,
                                                         std::chrono::milliseconds io_timeout) {
  return connectAs(uri, nvme::nodeHostNqn(node), nvme::nodeHostId(node), io_timeout);
}

Result<std::shared_ptr<nvme::NvmeTcpHost>> connectVolumeAsConverter(const std::string& uri,
                                                                    std::chrono::milliseconds io_timeout,
                                                                    const std::string& dhchap_secret) {
  return connectAs(uri, kConverterHostNqn, nvme::nodeHostId(":converter"), io_timeout, dhchap_secret);
}

}  // namespace offcore
