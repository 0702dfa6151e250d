// GatewayClient: the typed client of a storage gateway's management API
// (docs/API.md, "The storage gateway"). Everything that talks to a gateway
// (image conversion, flat rootfs clones, the `volume` CLI) goes through it,
// so request paths and bodies are written in one place.
//
// Threading: a GatewayClient is a value holding a socket path; each call is
// one blocking HTTP exchange. Use it from one thread at a time.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "api/api_client.h"
#include "base/result.h"

namespace offcore {

struct GatewayVolume {
  std::string name, nqn, uri;
  uint64_t size_bytes = 0;
  uint64_t allocated_bytes = 0;
  bool read_only = false;
  std::optional<std::string> parent;
  std::vector<std::string> clones;
  std::vector<std::string> allowed_hosts;  // empty: any host
  int controllers = 0;
  // DH-HMAC-CHAP secrets the request that returned this document generated,
  // by host NQN (the only time the gateway shows them).
  std::map<std::string, std::string> new_secrets;
  std::string json;  // the gateway's document, as sent
};

// Optional access list of a new volume: absent = any host.
using HostList = std::optional<std::vector<std::string>>;

// One allowed host with what to do about its DH-HMAC-CHAP secrets: each of
// the two is "" (the gateway's default: a new host gets a host secret, a
// listed host keeps its own; no controller secret), "generate", "none", or
// a secret "DHHC-1:..:..:".
struct HostAccess {
  std::string nqn;
  std::string dhchap_secret;
  std::string dhchap_ctrl_secret;
};

class GatewayClient {
 public:
  // target: a gateway name, ADDR:PORT of a running gateway, or its socket;
  // empty: the only gateway running on this machine.
  static Result<GatewayClient> open(const std::string& run_root, const std::string& target, long timeout_ms = 60000);

  const std::string& name() const { return name_; }  // the gateway's name
  const std::string& socket() const { return socket_; }

  Result<std::string> targetJson() const;  // GET /v1/target
  Result<std::vector<GatewayVolume>> list() const;
  Result<std::optional<GatewayVolume>> find(const std::string& name) const;
  Result<GatewayVolume> create(const std::string& name, uint64_t size_bytes, const HostList& hosts = {}) const;
  Result<GatewayVolume> create(const std::string& name, uint64_t size_bytes,
                               const std::vector<HostAccess>& hosts) const;
  Result<GatewayVolume> snapshot(const std::string& source, const std::string& name, const HostList& hosts = {}) const;
  Result<GatewayVolume> clone(const std::string& snapshot, const std::string& name, const HostList& hosts = {}) const;
  Result<GatewayVolume> resize(const std::string& name, uint64_t size_bytes) const;
  Result<GatewayVolume> setHosts(const std::string& name, const std::vector<std::string>& hosts) const;
  Result<GatewayVolume> setHostAccess(const std::string& name, const std::vector<HostAccess>& hosts) const;
  // Absent is success. Without force, a volume a host has attached is refused.
  Status remove(const std::string& name, bool force = false) const;

 private:
  GatewayClient(ApiClient api, std::string socket, std::string name)
      : api_(std::move(api)), socket_(std::move(socket)), name_(std::move(name)) {}
  ApiClient api_;
  std::string socket_;
  std::string name_;
};

// A gateway's volume document parsed (also used for list entries).
Result<GatewayVolume> parseGatewayVolume(const std::string& body);

// Where a gateway's API socket lives, from its name.
std::string gatewaySocketPath(const std::string& run_root, const std::string& name);
// Resolves --target: a gateway name, "ADDR:PORT" of a running gateway, or a socket path.
Result<std::string> resolveGatewaySocket(const std::string& run_root, const std::string& target);

}  // namespace offcore
