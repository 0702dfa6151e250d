// NetController: pod networking and Services for one node, inside the
// agent (SoC domain, agent loop thread). It
//  - sets up the SoC side once: bpffs for pinned maps, the VXLAN device,
//    the dataplane on the host-VF, the uplink and the tunnel;
//  - answers the CNI plugin (/v1/net/cni/add|del|check): IPAM from the
//    cluster store, a VF into the pod, the endpoint into the dataplane;
//  - answers `offcore vm` (/v1/net/vm/add|del|check): a VM's NIC, a
//    persistent tap as its representor (net_vm.cc);
//  - reprograms the dataplane whenever the cluster state or any node's
//    probe health changes (the store's watch: inotify or etcd), and runs
//    this node's probes;
//  - beats the node's heartbeat and re-checks which nodes are live on a
//    timer, so EIPs and probes leave a node that vanished without `dpu
//    down` within Config::node_expiry_ms (svc/liveness.h).
// docs/NETWORK.md has the packet paths; docs/CONCURRENCY.md the threads.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>

#include "api/api_server.h"
#include "base/config.h"
#include "base/event_loop.h"
#include "dpu/layout.h"
#include "dpu/node_state.h"
#include "dpu/vf.h"
#include "net/dataplane.h"
#include "svc/cluster_store.h"
#include "svc/prober.h"
#include "svc/service_programmer.h"

namespace offcore {

class NetController {
 public:
  static constexpr const char* kTunnelIf = "ocvx0";
  static constexpr int kPodMtu = 1450;  // 1500 minus VXLAN's 50 bytes

  NetController(EventLoop& loop, Config config, NodeState node, NodeLayout layout, VfManager& vfs);
  ~NetController();

  Status start();
  // Records why start() failed, for /v1/net/status and CNI errors.
  void failed(const Error& error);
  void registerRoutes(ApiServer& api);

 private:
  Status setUpSoc();
  // The VPC's mesh return link (net/dataplane.h), created once, when a mesh
  // pod of the VPC is attached here (net_cni.cc).
  Status ensureMeshReturnLink(uint32_t vni);
  // Deletes the return links of VPCs with no mesh pod on this node any more
  // (the peer goes with its link, and the kernel drops the routes into it).
  void syncMeshReturnLinks(const svc::ClusterState& state);
  Status registerNode();
  Status watchClusterStore();
  // Reconciles soon, covering delta as well (merged with what is pending).
  void scheduleReconcile(const svc::StateDelta& delta = svc::StateDelta::none());
  // Brings the state this node programs up to date with delta (the objects
  // it names: from the store's watch-fed cache on etcd), then the
  // dataplane, EIPs, probes and host routes that those objects reach.
  Status reconcile(const svc::StateDelta& delta);
  void syncHostRoutes(const svc::ClusterState& state);
  // announce: send a gratuitous ARP for every EIP we own, not only new ones.
  void syncEips(const svc::ClusterState& state, const std::set<std::string>& live, bool announce);
  void syncProbes(const svc::ClusterState& state, const std::set<std::string>& live);
  // Beats, and reconciles when the set of live nodes changed.
  void onHeartbeatTimer();
  std::set<std::string> currentLiveNodes(const svc::ClusterState& state) const;
  // A VPC's VNI (fixed at its creation): from the state this node runs,
  // else the store's; 0 for a VPC neither knows.
  Result<uint32_t> vniOf(const std::string& vpc) const;
  void adoptEips();
  void onProbeResult(const svc::ProbeResult& result);
  Status writeHealth();

  ApiResponse cniAdd(const ApiRequest& req);
  ApiResponse cniDel(const ApiRequest& req);
  ApiResponse cniCheck(const ApiRequest& req);
  // A VM's NIC (net_vm.cc): /v1/net/vm/add|del|check.
  ApiResponse vmAdd(const ApiRequest& req);
  ApiResponse vmDel(const ApiRequest& req);
  ApiResponse vmCheck(const ApiRequest& req);
  ApiResponse status();

  EventLoop& loop_;
  Config config_;
  NodeState node_;
  NodeLayout layout_;
  VfManager& vfs_;
  svc::ClusterStore store_;
  std::unique_ptr<Dataplane> dp_;
  std::unique_ptr<svc::ServiceProgrammer> programmer_;
  std::unique_ptr<svc::Prober> prober_;
  svc::NodeHealth health_;
  uint64_t programmed_generation_ = 0;
  std::string last_error_;
  std::unique_ptr<svc::StoreWatch> store_watch_;
  bool reconcile_pending_ = false;
  svc::StateDelta pending_delta_ = svc::StateDelta::none();  // what the scheduled reconcile covers
  // The cluster state as of the last reconcile, kept up to date by deltas.
  bool have_state_ = false;
  svc::ClusterState state_;
  std::map<std::string, svc::NodeHealth> health_seen_;  // every node's probe results, as last loaded
  bool ready_ = false;                                  // start() finished: the dataplane is attached and registered
  std::set<std::string> host_routes_, eips_;
  bool eips_retry_ = false, host_routes_retry_ = false;  // the last sync failed somewhere: again next beat
  std::set<std::string> live_;                           // the live nodes of the last reconcile
  EventLoop::TimerId heartbeat_timer_{};
  bool heartbeat_armed_ = false;
  uint64_t last_beat_ms_ = 0;
  // We missed beats long enough to have expired (stopped, starved): the
  // others moved our EIPs away and clients learnt their MACs.
  bool resumed_ = false;
  std::map<std::string, uint64_t> counters_;
};

}  // namespace offcore
