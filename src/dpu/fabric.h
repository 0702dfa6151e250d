// The fabric: one shared namespace with a bridge, standing in for the
// network a DPU's physical port plugs into. Node uplinks and fabric hosts
// (storage nodes, registries, external clients) attach to it.
//
// Addressing (one /16, <fabric_prefix>.0.0/16):
//   node uplinks  <prefix>.0.<10+index>   index from the fabric registry
//   fabric hosts  <prefix>.1.<10+k>       unless --ip is given
//
// The registry (<run_root>/fabric/state.json) is shared by every offcore
// process on the machine and only touched under the fabric lock.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "base/config.h"
#include "base/files.h"
#include "base/result.h"

namespace offcore {

struct FabricHost {
  std::string name;
  std::string netns;   // ocf-<name>
  std::string ifname;  // fabric side of its veth
  std::string ip;      // CIDR inside the host namespace, on eth0
};

class Fabric {
 public:
  explicit Fabric(const Config& config);

  // Serialises every change to the fabric and its registry.
  Result<FileLock> lock() const;

  // Creates the fabric namespace and bridge if missing. Call under lock().
  Status ensure();
  // Removes the fabric once no node and no host uses it. Call under lock().
  Status removeIfUnused();

  // Stable per-node index (0..239); the same name gets the same index back.
  Result<int> allocateNode(const std::string& node);
  Status releaseNode(const std::string& node);
  std::map<std::string, int> nodes() const;

  Result<FabricHost> addHost(const std::string& name, const std::string& cidr);
  Status deleteHost(const std::string& name);
  std::vector<FabricHost> hosts() const;
  Result<FabricHost> host(const std::string& name) const;

  const std::string& netns() const { return config_.fabric_netns; }
  std::string bridge() const { return "fab0"; }
  std::string nodeUplinkIp(int index) const;  // CIDR
  std::string subnet() const;                 // <prefix>.0.0/16

 private:
  struct Registry {
    std::map<std::string, int> nodes;
    std::map<std::string, FabricHost> hosts;
  };
  Registry load() const;
  Status save(const Registry& registry) const;
  std::string dir() const { return config_.run_root + "/fabric"; }

  Config config_;
};

}  // namespace offcore
