#include "image/gateway_volumes.h"

#include <nlohmann/json.hpp>

#include "base/json.h"
#include "gateway/gateway.h"
#include "nvme/host/host_identity.h"

namespace offcore {

using nlohmann::json;

namespace {

Result<GatewayVolume> volumeFrom(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return makeError("the gateway sent a malformed volume document");
  GatewayVolume v;
  v.name = j.value("name", "");
  v.nqn = j.value("nqn", "");
  v.uri = j.value("uri", "");
  v.size_bytes = j.value("size_bytes", 0ULL);
  v.read_only = j.value("read_only", false);
  return v;
}

}  // namespace

Result<GatewayVolumes> GatewayVolumes::open(const std::string& run_root, const std::string& target) {
  OC_ASSIGN_OR_RETURN(std::string sock, resolveGatewaySocket(run_root, target));
  ApiClient api(sock, 60000);
  OC_ASSIGN_OR_RETURN(std::string info, api.call("GET", "/v1/target"));
  json j = json::parse(info, nullptr, false);
  if (j.is_discarded()) return makeError("gateway " + target + " answered with malformed JSON");
  return GatewayVolumes(std::move(api), j.value("name", target));
}

Result<std::optional<GatewayVolume>> GatewayVolumes::find(const std::string& name) const {
  OC_ASSIGN_OR_RETURN(auto reply, api_.get("/v1/volumes/" + name));
  if (reply.status == 404) return std::optional<GatewayVolume>();
  if (reply.status != 200) return makeError("gateway " + name_ + ": volume " + name + ": " + reply.body);
  OC_ASSIGN_OR_RETURN(auto v, volumeFrom(reply.body));
  return std::optional<GatewayVolume>(v);
}

Result<GatewayVolume> GatewayVolumes::create(const std::string& name, uint64_t size_bytes) const {
  OC_ASSIGN_OR_RETURN(std::string body,
                      api_.call("POST", "/v1/volumes", dumpJson(json{{"name", name}, {"size", size_bytes}})));
  return volumeFrom(body);
}

Result<GatewayVolume> GatewayVolumes::snapshot(const std::string& source, const std::string& name) const {
  OC_ASSIGN_OR_RETURN(std::string body,
                      api_.call("POST", "/v1/volumes/" + source + "/snapshot", dumpJson(json{{"name", name}})));
  return volumeFrom(body);
}

Result<GatewayVolume> GatewayVolumes::clone(const std::string& snapshot, const std::string& name) const {
  OC_ASSIGN_OR_RETURN(std::string body,
                      api_.call("POST", "/v1/volumes/" + snapshot + "/clone", dumpJson(json{{"name", name}})));
  return volumeFrom(body);
}

Status GatewayVolumes::remove(const std::string& name, bool force) const {
  OC_ASSIGN_OR_RETURN(auto reply, api_.del("/v1/volumes/" + name + (force ? "?force=true" : "")));
  if (reply.status == 404 || reply.status == 200) return {};
  return makeError("gateway " + name_ + ": delete " + name + ": " + reply.body);
}

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

Result<std::shared_ptr<nvme::NvmeTcpHost>> connectVolume(const std::string& uri, const std::string& node,
                                                         std::chrono::milliseconds io_timeout) {
  OC_ASSIGN_OR_RETURN(auto u, parseNvmeUri(uri));
  if (u.nqn.empty()) return makeError("bad URI '" + uri + "': no NQN");
  nvme::HostOptions o;
  o.host_nqn = nvme::nodeHostNqn(node);
  o.host_id = nvme::nodeHostId(node);
  o.io_queues = 2;
  o.queue_depth = 32;
  o.io_timeout = io_timeout;
  return nvme::NvmeTcpHost::connect(u.address, u.port, u.nqn, o);
}

}  // namespace offcore
