// ServiceProgrammer: turns the cluster state (plus probe health) into one
// node's dataplane entries — endpoints, services, backends and Maglev
// tables — and writes only what changed. Lives on the agent's loop thread.
//
// Backend and service ids and every table are adopted from the maps at
// start, so an agent restart keeps the conntrack entries (which name
// backend ids) meaningful and the tables' history (Maglev update()).
#pragma once

#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "net/dataplane.h"
#include "svc/cluster_store.h"
#include "svc/maglev.h"

namespace offcore::svc {

struct NodeIdentity {
  std::string name;
  uint32_t fabric_ip = 0;     // network order: SNAT source for the service gateway
  uint32_t host_ifindex = 0;  // the host-VF in the SoC (hvf0)
};

struct ProgramStats {
  size_t endpoints = 0, services = 0, backends = 0, nodes = 0;
  size_t writes = 0;  // map updates and ring slabs written this round
};

// Where a backend is, as far as this node is concerned.
bool backendHealthy(const std::map<std::string, NodeHealth>& health, const std::string& backend);

class ServiceProgrammer {
 public:
  // Smallest Maglev table; tables are the smallest prime >= 100 x backends.
  static constexpr uint32_t kMinTableSize = 251;

  ServiceProgrammer(Dataplane& dataplane, NodeIdentity self) : dp_(dataplane), self_(std::move(self)) {}

  // Reads back what a previous incarnation programmed.
  Status adopt();
  Result<ProgramStats> program(const ClusterState& state, const std::map<std::string, NodeHealth>& health);

 private:
  using BackendKey = std::tuple<uint32_t, uint32_t, uint16_t>;  // vni, ip, port (network order)
  struct SvcKeyLess {
    bool operator()(const oc_svc_key& a, const oc_svc_key& b) const;
  };
  struct EpKeyLess {
    bool operator()(const oc_ep_key& a, const oc_ep_key& b) const;
  };
  struct Table {
    oc_svc_val value{};
    std::vector<MaglevBackend> backends;  // keys: "vni/ip:port"
    std::vector<uint32_t> ids;            // backend id per entry of `backends`
    MaglevTable table;
  };

  Status programEndpoints(const ClusterState& state, ProgramStats& stats);
  Status programNodes(const ClusterState& state, ProgramStats& stats);
  Status programNativeNets(const ClusterState& state, ProgramStats& stats);
  Status programService(const oc_svc_key& key, oc_svc_val value, const std::vector<BackendKey>& backends,
                        ProgramStats& stats);
  Result<uint32_t> backendId(const BackendKey& key, ProgramStats& stats);
  Result<uint32_t> allocateRing(uint32_t size);
  void freeRing(uint32_t offset, uint32_t size);

  Dataplane& dp_;
  NodeIdentity self_;
  std::map<oc_ep_key, oc_ep_val, EpKeyLess> endpoints_;
  std::map<uint32_t, oc_node_val> nodes_;                          // oc_nodes: fabric address -> uplink MAC
  std::map<std::pair<uint32_t, uint32_t>, uint32_t> native_nets_;  // (prefix, length) -> vni
  std::map<oc_svc_key, Table, SvcKeyLess> tables_;
  std::map<BackendKey, uint32_t> backend_ids_;
  std::set<uint32_t> free_backend_ids_;
  uint32_t next_backend_id_ = 1;
  uint32_t next_service_id_ = 1;
  uint32_t ring_top_ = 0;
  std::multimap<uint32_t, uint32_t> free_rings_;  // size -> offset
};

}  // namespace offcore::svc
