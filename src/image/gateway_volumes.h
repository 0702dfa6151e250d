// GatewayVolumes: the volume operations image conversion and flat rootfs
// clones need from a storage gateway (create, snapshot, clone, delete,
// look up), over the gateway's control API, plus opening a volume through
// the NVMe/TCP initiator to read or write its blocks.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "api/api_client.h"
#include "nvme/host/host.h"

namespace offcore {

struct GatewayVolume {
  std::string name, nqn, uri;
  uint64_t size_bytes = 0;
  bool read_only = false;
};

class GatewayVolumes {
 public:
  // target: a gateway name, ADDR:PORT of a running gateway, or its socket.
  static Result<GatewayVolumes> open(const std::string& run_root, const std::string& target);

  Result<std::optional<GatewayVolume>> find(const std::string& name) const;
  Result<GatewayVolume> create(const std::string& name, uint64_t size_bytes) const;
  Result<GatewayVolume> snapshot(const std::string& source, const std::string& name) const;
  Result<GatewayVolume> clone(const std::string& snapshot, const std::string& name) const;
  Status remove(const std::string& name, bool force = false) const;
  const std::string& name() const { return name_; }

 private:
  GatewayVolumes(ApiClient api, std::string name) : api_(std::move(api)), name_(std::move(name)) {}
  ApiClient api_;
  std::string name_;  // the gateway's name
};

// Connects the node's initiator identity to a volume's NVMe/TCP URI.
Result<std::shared_ptr<nvme::NvmeTcpHost>> connectVolume(const std::string& uri, const std::string& node,
                                                         std::chrono::milliseconds io_timeout);

struct NvmeUri {
  std::string address;
  uint16_t port = 4420;
  std::string nqn;
};
Result<NvmeUri> parseNvmeUri(const std::string& uri);

}  // namespace offcore
