// Dataplane: what the node's network control plane programs. One
// implementation today (BpfDataplane: tc programs + BPF maps in the SoC);
// the interface is the seam a hardware flow table (a real DPU's eSwitch)
// would plug into. Keys and values are the ABI structs the BPF side reads.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "net/bpf/dataplane_abi.h"

namespace offcore {

// The mesh return link of a VPC (OC_IF_PROXY), a veth pair in the SoC: the
// node proxy routes plain pods of other nodes into this end (and only its
// own packets go there: the mesh's nft table drops forwarding into it); the
// program on the peer, meshReturnLink(vni) + "p", tunnels them.
inline std::string meshReturnLink(uint32_t vni) { return "ocm" + std::to_string(vni); }

class Dataplane {
 public:
  virtual ~Dataplane() = default;

  virtual Status setConfig(const oc_config& config) = 0;
  // Puts the program on `ifname`'s ingress and records what it is.
  virtual Status attach(const std::string& ifname, const oc_iface_val& role) = 0;
  virtual Status detach(const std::string& ifname) = 0;

  virtual Status upsertEndpoint(const oc_ep_key& key, const oc_ep_val& value) = 0;
  virtual Status removeEndpoint(const oc_ep_key& key) = 0;
  // The cluster's nodes by fabric address (network order): VXLAN from any
  // other source is dropped; natively routed frames only from their uplink
  // MACs (oc_node_val.mac) are taken.
  virtual Status upsertNode(uint32_t fabric_ip, const oc_node_val& value) = 0;
  virtual Status removeNode(uint32_t fabric_ip) = 0;
  // The prefixes of natively routed VPCs: where a frame from another node's
  // uplink is delivered without a tunnel.
  virtual Status upsertNativeNet(const oc_lpm_v4& prefix, const oc_native_val& value) = 0;
  virtual Status removeNativeNet(const oc_lpm_v4& prefix) = 0;
  virtual Status upsertService(const oc_svc_key& key, const oc_svc_val& value) = 0;
  virtual Status removeService(const oc_svc_key& key) = 0;
  virtual Status setBackend(uint32_t id, const oc_backend_val& value) = 0;
  // Maglev slots [offset, offset + slots.size()).
  virtual Status writeRing(uint32_t offset, std::span<const oc_ring_slot> slots) = 0;

  // What the maps hold now (after a restart the control plane adopts it).
  virtual Result<std::vector<std::pair<oc_ep_key, oc_ep_val>>> endpoints() const = 0;
  virtual Result<std::vector<std::pair<uint32_t, oc_node_val>>> nodes() const = 0;
  virtual Result<std::vector<std::pair<oc_lpm_v4, oc_native_val>>> nativeNets() const = 0;
  virtual Result<std::vector<std::pair<oc_svc_key, oc_svc_val>>> services() const = 0;
  virtual Result<std::vector<std::pair<uint32_t, oc_backend_val>>> backends() const = 0;
  virtual std::span<const oc_ring_slot> ring() const = 0;
  // Per-counter sums over CPUs, indexed by oc_stat.
  virtual Result<std::vector<uint64_t>> stats() const = 0;
  // One counter per possible CPU: where the program ran (OC_STAT_RX: which
  // CPUs did the dataplane's work; the SoC's, with receive steering).
  virtual Result<std::vector<uint64_t>> statPerCpu(uint32_t stat) const = 0;
};

}  // namespace offcore
