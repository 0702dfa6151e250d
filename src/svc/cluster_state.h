// The cluster's network state as values: what every StateStorage holds and
// every agent programs from (resources, pod endpoints, nodes, probe health),
// its JSON forms (cluster_state.cc) and the rules of an apply (apply.cc).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
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

// The sections of a state, as bits of a mask.
enum StateSection : unsigned {
  kVpcsSection = 1,
  kSubnetsSection = 2,
  kBackendsSection = 4,
  kServicesSection = 8,
  kProbesSection = 16,
  kEndpointsSection = 32,
  kNodesSection = 64,
  kAllSections = 127,
};
// The section of "<section>/<name>" (0: none).
unsigned sectionOf(const std::string& key);

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

// The state as one JSON object per key "<section>/<name>", sections as in
// state.json (vpcs, subnets, backends, services, probes, endpoints, nodes):
// how etcd holds it, one key per object.
std::map<std::string, std::string> stateObjects(const ClusterState& s);
// The objects that differ from `before` to `after`: puts (key -> JSON, as
// stateObjects has them) and deletes. Work: a comparison per object and a
// serialization per changed one.
// Only the sections in the mask are compared.
void diffStateObjects(const ClusterState& before, const ClusterState& after, std::map<std::string, std::string>& puts,
                      std::vector<std::string>& deletes, unsigned sections = kAllSections);
// Adds one such object to s; `where` names it in errors.
Status readStateObject(ClusterState& s, const std::string& key, const std::string& text, const std::string& where);
// Removes one (the default VPC stays, as in every state); unknown keys are ignored.
void eraseStateObject(ClusterState& s, const std::string& key);
// Whether key ("<section>/<name>") names an object of a section of the state.
bool isStateObjectKey(const std::string& key);
// Makes to's object `key` what from holds: a copy of it, or gone (the
// default VPC stays). Unknown keys are ignored.
void copyStateObject(const ClusterState& from, ClusterState& to, const std::string& key);

std::string healthToJson(const NodeHealth& h);
Result<NodeHealth> healthFromJson(const std::string& text, const std::string& origin);
// A stored health record (its text, or why it could not be read): the
// record, or nothing after a warning. Stores skip records they cannot read.
std::optional<NodeHealth> readableHealth(const Result<std::string>& text, const std::string& origin);

// A name that is one path or key segment (nodes, container ids, ifnames):
// not empty, no '/', not "." or "..".
bool isPlainName(const std::string& s);

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

}  // namespace offcore::svc
