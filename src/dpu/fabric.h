// The fabric: one shared namespace with a bridge, standing in for the
// network a DPU's physical port plugs into. Node uplinks and fabric hosts
// (storage nodes, registries, external clients) attach to it.
//
// Addressing (one /16, <fabric_prefix>.0.0/16):
//   node uplinks  <prefix>.0.<10+index>   index from the fabric registry
//   fabric hosts  <prefix>.1.<10+k>       unless --ip is given
//
// Addresses are handed out round-robin (a cursor in the registry that
// outlives the fabric), so an address comes back only after every other
// one was used: a peer's neighbour entry or a stale record of a departed
// node never meets a new owner of its address. When one is handed out, the
// SoCs and fabric hosts still drop any neighbour entry for it anyway.
//
// While the fabric exists, the namespace offcore runs in (the root one)
// has an unreachable route for the whole range at metric kUnreachableMetric:
// with no node routing the fabric for it, fabric addresses fail at once
// (EHOSTUNREACH) instead of leaving the machine by the default route. A
// node's `via` route (metric 0) wins over it.
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
  static constexpr int kUnreachableMetric = 4242;

  explicit Fabric(const Config& config);

  // Serialises every change to the fabric and its registry.
  Result<FileLock> lock() const;

  // Creates the fabric namespace and bridge (and the unreachable route) if
  // missing. Call under lock().
  Status ensure();
  // Removes the fabric (and the unreachable route) once no node and no host
  // uses it. Call under lock().
  Status removeIfUnused();

  // Per-node index (0..239), round-robin; the same name gets the same index
  // back while it holds one.
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
    int next_node = 0;  // where the next search for a free index starts
    int next_host = 0;  // same, for host addresses <prefix>.1.<10+k>
  };
  // Drops every SoC's and fabric host's neighbour entry for ip.
  void forgetNeighbour(const Registry& registry, const std::string& ip) const;
  Registry load() const;
  Status save(const Registry& registry) const;
  std::string dir() const { return config_.run_root + "/fabric"; }

  Config config_;
};

}  // namespace offcore
