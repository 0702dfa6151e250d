// Virtual functions: a veth pair per VF, the stand-in for an SR-IOV VF and
// its representor. The VF end goes into the pod's namespace; the
// representor (pf0vf<N>, the name mlx5 and friends use) stays in the SoC.
//
// Owned by the agent, which runs inside the SoC namespace, so "" below is
// the SoC. Routing: each representor carries the pod gateway address
// 169.254.1.1/32 and the SoC routes the pod's /32 to the representor, so
// the pod reaches the SoC at L3 from the first packet. Policy comes later.
#pragma once

#include <string>
#include <vector>

#include "base/cpu_list.h"
#include "base/result.h"

namespace offcore {

struct VfSpec {
  std::string netns;  // a name from `ip netns list`, or a path (/proc/PID/ns/net)
  std::string ifname = "eth0";
  std::string ip;   // CIDR for the VF end; "" = no address
  std::string mac;  // "" = derived from the node and VF index
  // The SoC routes the pod's address to the representor (kernel routing).
  // Pod networking (src/net) turns this off: its BPF program routes, per
  // VPC, which lets two VPCs use the same addresses.
  bool soc_route = true;
  int mtu = 0;  // 0 = the kernel's default
};

struct Vf {
  int index = 0;
  std::string representor;
  std::string netns;
  std::string ifname;
  std::string ip;
  std::string mac;
};

std::string vfsToJson(const std::vector<Vf>& vfs);

class VfManager {
 public:
  // node_index keeps MACs unique across nodes on one fabric. A VF's
  // receive work is steered (rx_steering.h): the representor's to
  // soc_cpus (threaded NAPI when napi, else RPS), the pod end's to
  // host_cpus (threaded NAPI when napi and the pod's sysfs is writable,
  // else RPS); empty sets leave steering off.
  VfManager(std::string state_path, int node_index, CpuSet soc_cpus = {}, CpuSet host_cpus = {}, bool napi = false);

  // Reloads vfs.json and drops entries whose representor is gone.
  Status load();
  Result<Vf> add(const VfSpec& spec);
  // By representor name ("pf0vf3"), or "NETNS/IFNAME".
  Status remove(const std::string& id);
  const std::vector<Vf>& list() const { return vfs_; }

  static constexpr const char* kPodGateway = "169.254.1.1";

 private:
  Status save() const;
  std::string state_path_;
  int node_index_;
  CpuSet soc_cpus_, host_cpus_;
  bool napi_ = false;
  std::vector<Vf> vfs_;
};

// Validation helpers, exposed for tests and the fuzzer.
Status validateCidr(const std::string& cidr);
Status validateMac(const std::string& mac);
Status validateIfname(const std::string& ifname);
// A pod namespace's iproute2 name; offcore's own namespaces are refused.
Status validateNetnsName(const std::string& name);

}  // namespace offcore
