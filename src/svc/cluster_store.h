// The cluster's network state, shared by every agent on the machine and the
// CLI: one JSON document, <dir>/state.json, replaced atomically under an
// exclusive flock on <dir>/.lock for every read-modify-write (readers take
// it shared). Probe results live apart, <dir>/health/<node>.json, each file
// written only by that node's agent, so health never contends for the lock.
// Agents watch dir() with inotify (IN_MOVED_TO of state.json: the file is
// replaced by rename, so a watch on the file itself goes stale) and
// reprogram when `generation` moves. Agents also beat a heartbeat file,
// <dir>/heartbeat/<node>, which makes a node live (svc/liveness.h).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "base/result.h"
#include "svc/resources.h"

namespace offcore::svc {

// A pod interface the CNI asked for: an address from a Subnet's IPAM.
struct Endpoint {
  std::string id;  // "<node>/<containerId>/<ifname>"
  std::string node, container_id, ifname, pod_name, netns, vpc, subnet;
  std::string ip;  // no prefix
  int prefix_len = 0;
  std::string mac, representor;  // filled in by the agent once the VF is set up
  // The service mesh (src/mesh): the pod's traffic goes through its node's
  // proxy under the identity spiffe://<td>/ns/<ns>/sa/<service_account>.
  bool mesh = false;
  std::string ns = "default", service_account = "default";
  // A VM's NIC (`offcore vm create --net`): the VM's name; "" = a pod. Its
  // representor is a tap in the SoC; a Backend of kind vm may name its ip.
  std::string vm{};
  bool operator==(const Endpoint&) const = default;
};

struct EndpointRequest {
  std::string node, container_id, ifname, pod_name, netns;
  std::string vpc;  // "" = the subnet's VPC; otherwise it must be the subnet's VPC
  std::string subnet;
  bool mesh = false;
  std::string ns = "default", service_account = "default";
  std::string vm{};  // a VM's NIC: the VM's name
};

struct NodeRecord {
  std::string name, fabric_ip, host_ip, host_mac;
  std::string fabric_mac;  // its SoC uplink's MAC (natively routed frames come from it)
  bool operator==(const NodeRecord&) const = default;
};

struct BackendHealth {
  bool healthy = false;
  uint64_t since_ms = 0;  // wall clock of the last transition
  std::string last_error;
  std::string probe;  // the NetworkProbe's name
};

struct NodeHealth {
  std::string node;
  uint64_t programmed_generation = 0;  // the state generation its dataplane runs
  uint64_t updated_ms = 0;
  std::map<std::string, BackendHealth> backends;  // by Backend name
};

struct ClusterState {
  uint64_t generation = 0;          // +1 on every change
  std::map<std::string, Vpc> vpcs;  // always holds the default VPC
  std::map<std::string, Subnet> subnets;
  std::map<std::string, Backend> backends;
  std::map<std::string, Service> services;  // cluster_ip always set
  std::map<std::string, NetworkProbe> probes;
  std::map<std::string, Endpoint> endpoints;  // by id
  std::map<std::string, NodeRecord> nodes;

  bool operator==(const ClusterState&) const = default;
  // The empty state: just the default VPC.
  static ClusterState empty();
  std::string toJson() const;
  // `origin` names the file in errors; a corrupt document is an error, never a reset.
  static Result<ClusterState> fromJson(const std::string& text, const std::string& origin);
};

std::string healthToJson(const NodeHealth& h);
Result<NodeHealth> healthFromJson(const std::string& text, const std::string& origin);

struct ApplyResult {
  // "Kind/name", in document order.
  std::vector<std::string> created, updated, unchanged;
  uint64_t generation = 0;  // of the state after the apply
};

// Where Service addresses may come from. A fixed clusterIP must lie in
// service_cidr; an eip in eip_pool (when one is declared). Neither may be a
// pod's, a Backend's or a node's address, nor inside a Subnet.
struct AddressPlan {
  std::string service_cidr = "10.96.0.0/16";
  std::string eip_pool;  // "" = no pool declared (tests); the config always declares one
  AddressPlan() = default;
  AddressPlan(const char* cidr) : service_cidr(cidr) {}  // NOLINT: a plan of only a service CIDR
  AddressPlan(std::string cidr, std::string pool = "") : service_cidr(std::move(cidr)), eip_pool(std::move(pool)) {}
};

// Validates docs against each other and the state (references, overlaps,
// uniqueness, immutable fields), assigns VNIs and ClusterIPs, and merges them
// into state. On error, state is untouched and the message lists every
// problem, one per line, each `file:line: Kind "name": field: what`. Does not
// bump the generation.
Result<ApplyResult> applyToState(ClusterState& state, const std::vector<Resource>& docs, const AddressPlan& plan);

// Why removing kind/name from state is refused ("" = it can go).
std::string removalBlocker(const ClusterState& state, const std::string& kind, const std::string& name);

class ClusterStore {
 public:
  explicit ClusterStore(std::string dir, AddressPlan plan = AddressPlan());

  // A missing dir or file is the empty state (with the default VPC).
  Result<ClusterState> load() const;
  // All-or-nothing: validate every document, then one atomic write.
  Result<ApplyResult> apply(const std::vector<Resource>& docs);
  // kind is canonical ("Service"); refused while something refers to it.
  // A missing resource is an error with code ENOENT.
  Status remove(const std::string& kind, const std::string& name);

  // IPAM: the lowest free host address of the subnet (never the network,
  // broadcast or gateway address, nor a Backend's fixed ip). Idempotent per id.
  Result<Endpoint> addEndpoint(const EndpointRequest& req);
  Status setEndpointDetails(const std::string& id, const std::string& mac, const std::string& representor);
  Status removeEndpoint(const std::string& id);  // ok when absent
  // A migrated VM's NIC: the endpoint id (on another node) becomes the same
  // NIC on node, keeping its address and MAC; the representor is cleared
  // for the new node to fill in. Returns the moved endpoint.
  Result<Endpoint> moveEndpoint(const std::string& id, const std::string& node);
  Status registerNode(const NodeRecord& node);
  // A node leaves (`dpu down`): its record, its endpoints (its pods went
  // with it), its health and heartbeat files. Ok when it was not there.
  Status unregisterNode(const std::string& name);

  // Liveness: <dir>/heartbeat/<node> holds the wall-clock ms of the agent's
  // last beat. Not watched by inotify (agents re-check on a timer), so a
  // beat costs nobody a reconcile.
  Status heartbeat(const std::string& node, uint64_t now_ms);
  // By node; unreadable files count as never heard from.
  std::map<std::string, uint64_t> loadHeartbeats() const;

  // Health needs no lock: each file has one writer and is replaced atomically.
  Status writeHealth(const NodeHealth& health);
  // By node; unreadable files are skipped with a warning.
  Result<std::map<std::string, NodeHealth>> loadHealth() const;

  const std::string& dir() const { return dir_; }
  std::string stateFile() const { return dir_ + "/state.json"; }

 private:
  // Runs fn on the current state under the exclusive lock; writes the state
  // back (generation + 1) only when fn changed it. *generation: the result's.
  template <typename Fn>
  Status modify(Fn&& fn, uint64_t* generation = nullptr);
  Result<ClusterState> readState() const;

  std::string dir_;
  AddressPlan plan_;
};

}  // namespace offcore::svc
