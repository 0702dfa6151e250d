// What one proxy runs with at a moment: the Istio-shaped config plus the
// Services and endpoints it applies to. Built from offcore's cluster state
// (`offcore mesh apply` + svc resources) or from an xDS server; the proxy
// swaps whole snapshots, never edits one in place.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "mesh/config/model.h"

namespace offcore::mesh {

struct MeshEndpoint {
  std::string ip;
  uint16_t port = 0;     // 0 = the service port's target_port
  std::string node;      // hosting node; "" = off-mesh (fabric)
  std::string node_ip;   // that node's fabric address (HBONE peer)
  Labels labels;         // the Backend's labels (subsets select on them)
  bool mesh = false;     // in the mesh (reached through HBONE when remote)
  std::string identity;  // SPIFFE ID, mesh only
  bool healthy = true;
  bool operator==(const MeshEndpoint&) const = default;
};

struct MeshServicePort {
  std::string name;
  uint16_t port = 0;
  uint16_t target_port = 0;
  // Kubernetes appProtocol: "http", "http2", "grpc", "tcp"; "" = sniff.
  std::string app_protocol;
  // The listener's HttpConnectionManager.stream_idle_timeout (xDS only);
  // unset = the proxy's default, 0 = none.
  std::optional<Millis> stream_idle_timeout = std::nullopt;
  bool operator==(const MeshServicePort&) const = default;
};

struct MeshService {
  std::string name;  // canonical host
  std::string vip;   // ClusterIP
  std::vector<MeshServicePort> ports;
  std::vector<MeshEndpoint> endpoints;
  bool operator==(const MeshService&) const = default;
};

// A pod of the cluster, whether or not a Service selects it: who a source
// address is (identity, namespace) and how to reach a destination address.
struct MeshWorkload {
  std::string ip;
  std::string name;           // the pod name
  std::string node, node_ip;  // hosting node and its fabric address
  std::string ns = "default", service_account = "default";
  std::string identity;     // SPIFFE ID (mesh pods)
  std::string representor;  // pods of this node: the SoC side of its VF
  uint32_t vni = 0;         // its VPC's (routes to plain pods elsewhere: meshReturnLink)
  Labels labels;            // its Backend's labels, if one names it
  bool mesh = false;
  bool operator==(const MeshWorkload&) const = default;
};

struct Snapshot {
  uint64_t version = 0;
  MeshConfig config;
  std::vector<MeshService> services;
  std::vector<MeshWorkload> workloads;
  std::string trust_domain = "cluster.local";
};

}  // namespace offcore::mesh
