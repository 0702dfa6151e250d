// Service -> backends: what every node's dataplane programs for a Service.
// Pure functions of the cluster state, sorted, so every node that reads the
// same generation builds the same Maglev input (see maglev.h).
#pragma once

#include <string>
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

// Selected backends without an address yet (a pod with no endpoint), by name.
std::vector<std::string> pendingBackends(const ClusterState& state, const Service& service);

}  // namespace offcore::svc
