#include "image/gateway_volumes.h"

#include "nvme/auth/dhchap_key.h"
#include "nvme/host/host_identity.h"
#include "nvme/host/nvme_uri.h"

namespace offcore {

std::string nodeHostsPattern() { return nvme::nodeHostNqn("") + "*"; }

namespace {

Result<std::shared_ptr<nvme::NvmeTcpHost>> connectAs(const std::string& uri, const std::string& host_nqn,
                                                     const std::array<uint8_t, 16>& host_id,
                                                     std::chrono::milliseconds io_timeout,
                                                     const std::string& dhchap_secret = "") {
  OC_ASSIGN_OR_RETURN(auto u, nvme::parseNvmeUri(uri));
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
