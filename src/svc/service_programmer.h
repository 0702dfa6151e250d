// ServiceProgrammer: turns the cluster state (plus probe health) into one
// node's dataplane entries — endpoints, services, backends and Maglev
// tables — and writes only what changed. Lives on the agent's loop thread.
//
// Work per call: told what changed (a StateDelta of Services, Backends and
// Endpoints), it recomputes only the Services those touch, through indexes
// (resolve.h), so a change costs the same at 10 Services as at 10,000. A
// change to VPCs, Subnets, nodes, the live set or probe health (rare, and
// felt by everything) recomputes everything.
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
#include "svc/resolve.h"
#include "svc/state_storage.h"

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
  // state is the whole state after delta; endpoints of a registered node
  // not in live serve nobody (their pods leave every Service).
  Result<ProgramStats> program(const ClusterState& state, const std::map<std::string, NodeHealth>& health,
                               const std::set<std::string>& live, const StateDelta& delta);
  // Everything, every registered node live.
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
    std::vector<BackendKey> keys;         // per entry of `backends`
    MaglevTable table;
  };

  Status programAll(const ClusterState& state, ProgramStats& stats);
  Status programChanged(const ClusterState& state, const StateDelta& delta, ProgramStats& stats);
  // One Service's tables as the state has them (none when it is gone).
  Status programServiceNamed(const ClusterState& state, const std::string& name, ProgramStats& stats);
  Status removeTable(const oc_svc_key& key, ProgramStats& stats);
  // Services that may select a backend with these label pairs.
  void servicesFor(const std::vector<std::string>& pairs, std::set<std::string>& out) const;
  void indexService(const std::string& name, const Service* now);
  bool usable(const ClusterState& state, const Endpoint& e) const;
  // The dataplane entry of an endpoint (nothing when it has none here).
  bool endpointEntry(const ClusterState& state, const Endpoint& ep, oc_ep_key& k, oc_ep_val& v) const;
  Status setEndpointEntries(const std::set<std::string>& ids, const ClusterState& state, ProgramStats& stats);
  Status releaseUnusedBackends(ProgramStats& stats);
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
  // What the last program() saw, for the next one's delta.
  bool programmed_ = false;
  std::set<std::string> live_;
  std::set<std::string> unhealthy_;  // backends some node reports unhealthy
  ResolveIndex index_;
  std::map<std::string, std::vector<oc_svc_key>, std::less<>> svc_keys_;  // by Service: its tables
  std::map<oc_svc_key, std::string, SvcKeyLess> key_owner_;               // the Service each table is programmed for
  std::map<std::string, std::set<std::string>> svc_by_pair_;              // a selector's first pair -> Services
  std::map<std::string, std::string> pair_of_svc_;
  std::map<std::string, oc_ep_key> ep_keys_;    // by endpoint id: its entry
  std::map<BackendKey, int64_t> backend_refs_;  // tables naming each backend
  std::set<BackendKey> unreferenced_;           // may have no table left: checked after each call
  std::map<BackendKey, uint32_t> backend_ids_;
  std::set<uint32_t> free_backend_ids_;
  uint32_t next_backend_id_ = 1;
  uint32_t next_service_id_ = 1;
  uint32_t ring_top_ = 0;
  std::multimap<uint32_t, uint32_t> free_rings_;  // size -> offset
};

}  // namespace offcore::svc
