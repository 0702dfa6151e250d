// The storage gateway (`offcore target serve`): a VolumeStore exported over
// NVMe/TCP, one subsystem per volume, plus its management API on a unix
// socket (<run_root>/targets/<name>/api.sock), which the CLI reaches from
// any namespace because the socket is a path, not an address.
//
// Threading: the management API runs on the main EventLoop; the NVMe/TCP
// target runs its own poll groups (nvme/target/target.h). The store is
// thread-safe, so both reach it directly.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "api/api_server.h"
#include "base/event_loop.h"
#include "gateway/client.h"
#include "gateway/host_secrets.h"
#include "nvme/target/target.h"
#include "storage/volume_store.h"

namespace offcore {

struct GatewayConfig {
  std::string name = "stor";
  std::string data_dir;
  std::string listen_addr = "0.0.0.0";
  uint16_t port = 4420;
  uint64_t capacity_bytes = 0;
  std::string run_root = "/run/offcore";
  int poll_groups = 0;
  std::chrono::microseconds busy_poll{0};  // TargetConfig::busy_poll
};

// The subsystem NQN a gateway gives a volume.
std::string volumeNqn(const std::string& gateway, const std::string& volume);

class StorageGateway {
 public:
  explicit StorageGateway(GatewayConfig config);
  ~StorageGateway();

  // Opens the store, exports every volume, starts NVMe/TCP and the API.
  Status start();
  // Serves until SIGTERM/SIGINT.
  Status run();

  std::string apiSocket() const;

 private:
  void registerRoutes();
  Status exportVolume(const std::string& name);
  void unexportVolume(const std::string& name);
  std::string volumeJson(const VolumeInfo& v, const std::vector<gateway::NewSecret>& created = {}) const;
  // Gives the volume's subsystem its allow-list and DH-HMAC-CHAP secrets.
  Status applyHostAccess(const std::string& name, const std::vector<std::string>& hosts);

  GatewayConfig config_;
  EventLoop loop_;
  std::unique_ptr<VolumeStore> store_;
  std::unique_ptr<gateway::HostSecretFile> secrets_;
  std::shared_ptr<nvme::SubsystemRegistry> registry_;
  std::unique_ptr<nvme::NvmeTcpTarget> target_;
  std::unique_ptr<ApiServer> api_;
  int signal_fd_ = -1;
};

// Removes <run_root>/targets/<name>/ of every gateway whose process is gone
// (a gateway killed with SIGKILL cannot remove its own). A gateway counts as
// alive while the pid in its target.json runs with the recorded start time.
// Fails if `self` (a name about to start) is alive as another process.
Status sweepGatewayRunDirs(const std::string& run_root, const std::string& self = "");

}  // namespace offcore
