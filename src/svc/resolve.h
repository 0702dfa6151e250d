// Service -> backends: what every node's dataplane programs for a Service.
// Pure functions of the cluster state, sorted, so every node that reads the
// same generation builds the same Maglev input (see maglev.h).
#pragma once

#include <functional>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "svc/cluster_store.h"

namespace offcore::svc {

struct ResolvedBackend {
  std::string name;  // the Backend
  std::string kind;  // pod | vm | baremetal | ip
  std::string vpc;
  uint32_t vni = 0;
  std::string ip;
  std::string node;                    // "" = reached over the fabric
  std::string endpoint_id;             // kind pod: the Endpoint it resolved to
  std::vector<uint16_t> target_ports;  // parallel to Service::ports
};

// The Backends a Service selects (every selector pair matches the labels;
// scope vpc: only backends in the Service's VPC), by name.
std::vector<const Backend*> selectBackends(const ClusterState& state, const Service& service);

// The selected backends that have an address, sorted by (vpc, ip). A pod
// backend resolves to the endpoint of its pod in its VPC (the lowest id if
// the pod has several). Backends sharing a (vpc, ip) appear once.
std::vector<ResolvedBackend> resolveService(const ClusterState& state, const Service& service);

// Takes name out of index[key], and the key out when nothing is left (the
// indexes here and the programmer's).
template <typename Key>
void unindex(std::map<Key, std::set<std::string>>& index, const Key& key, const std::string& name) {
  auto it = index.find(key);
  if (it == index.end()) return;
  it->second.erase(name);
  if (it->second.empty()) index.erase(it);
}

// Indexes over a state that make resolving one Service cost what it
// selects, not the cluster: Backends by label and by pod, Endpoints by pod.
// Built from a whole state, then kept by telling it each changed object
// (the state's current value, or nullptr when it is gone). Answers as the
// functions above do on the state it was told about.
class ResolveIndex {
 public:
  void build(const ClusterState& state);
  void setBackend(const std::string& name, const Backend* now);
  void setEndpoint(const std::string& id, const Endpoint* now);

  // An endpoint may serve (e.g. its node is live).
  using Usable = std::function<bool(const Endpoint&)>;
  // As resolveService(), skipping endpoints that are not usable.
  std::vector<ResolvedBackend> resolve(const ClusterState& state, const Service& service, const Usable& usable) const;
  // The Backends whose labels hold this "key\0value" pair / that name this
  // pod in this VPC, by name (before the latest set*() of each).
  const std::set<std::string>& withLabel(const std::string& pair) const;
  const std::set<std::string>& ofPod(const std::string& pod, const std::string& vpc) const;
  // The label pairs and the (pod, vpc) of an indexed Backend; of an Endpoint, its (pod, vpc).
  std::vector<std::string> labelsOf(const std::string& backend) const;
  std::pair<std::string, std::string> podOfBackend(const std::string& backend) const;
  std::pair<std::string, std::string> podOfEndpoint(const std::string& id) const;

  static std::string pair(const std::string& key, const std::string& value) { return key + '\0' + value; }

 private:
  using Pod = std::pair<std::string, std::string>;  // pod name, vpc
  std::map<std::string, std::set<std::string>> by_label_;
  std::map<std::string, std::vector<std::string>> labels_of_;
  std::map<Pod, std::set<std::string>> backends_of_pod_;
  std::map<std::string, Pod> pod_of_backend_;
  std::map<Pod, std::set<std::string>> endpoints_of_pod_;
  std::map<std::string, Pod> pod_of_endpoint_;
};

// Selected backends without an address yet (a pod with no endpoint), by name.
std::vector<std::string> pendingBackends(const ClusterState& state, const Service& service);

}  // namespace offcore::svc
