// Machine-wide settings. Every field has an embedded default, so `offcore
// demo` runs with no file at all; /etc/offcore/config.json (or the file named
// by OFFCORE_CONFIG) overrides fields one by one.
#pragma once

#include <string>

#include "base/result.h"

namespace offcore {

struct Config {
  std::string run_root = "/run/offcore";  // per-node state: <run_root>/<node>/
  std::string cgroup_root = "offcore";    // cgroups live under <controller>/<cgroup_root>/<node>/
  // Fabric: the shared L2 segment standing in for the DPU's physical port.
  std::string fabric_netns = "oc-fabric";
  std::string fabric_prefix = "10.77";  // nodes 10.77.0.x, fabric hosts 10.77.1.x, /16
  // Host-VF links: node i gets <host_link_prefix>.i.0/30 (SoC .1, host .2).
  std::string host_link_prefix = "10.78";
  // Cluster-scoped network state (VPCs, Services, endpoints, IPAM) shared by
  // every node's agent on the machine: src/svc/cluster_store.h.
  std::string cluster_dir = "/var/lib/offcore/cluster";
  // Where the network state lives instead, when it spans machines:
  // "etcd://host:port[,host:port...]" (src/svc/state_storage.h); "" = cluster_dir.
  // Client TLS to etcd: with etcd_ca_file the members are reached over https.
  std::string cluster_store;
  std::string etcd_ca_file, etcd_cert_file, etcd_key_file;
  // etcd authentication (`etcdctl auth enable`): this user, its password in
  // a file only its owner reads (docs/ETCD.md, Security).
  std::string etcd_user, etcd_password_file;
  // The etcd user the mesh keeper reads and makes the mesh CA as
  // (/offcore/mesh-ca/), so the proxy worker, which talks to etcd as the
  // node, cannot read the CA key: the worker's sandbox hides this file.
  // Unset: the node's own user (docs/ETCD.md, "The mesh CA").
  std::string mesh_ca_etcd_user, mesh_ca_etcd_password_file;
  // How offcore speaks to etcd: "grpc" (etcd's gRPC API, the default) or
  // "gateway" (its HTTP/JSON gateway); docs/ETCD.md, "Gateway or gRPC".
  std::string etcd_wire = "grpc";
  // Where ClusterIPs are allocated when a Service names none.
  std::string service_cidr = "10.96.0.0/16";
  // Where LoadBalancer EIPs may come from; "" = <fabric_prefix>.128.0/17,
  // away from nodes (.0.x) and fabric hosts (.1.x).
  std::string eip_pool;
  int agent_ready_timeout_ms = 2000;
  // Node liveness: each agent beats every heartbeat_interval_ms; a node whose
  // last beat is node_expiry_ms old owns no EIP and leads no probe
  // (src/svc/liveness.h). An agent restart is far shorter than the expiry.
  int heartbeat_interval_ms = 1000;
  int node_expiry_ms = 5000;
  // Receive steering (src/dpu/rx_steering.h): a pod's packets are received
  // on the SoC's cpus, as on a card. false keeps the kernel's default (the
  // sending cpu), for comparisons.
  bool rx_steering = true;
  // How the SoC's receiving ends are steered: "napi" (threaded NAPI pinned to
  // the SoC's cpus; far fewer cross-cpu interrupts) or "rps" (the receive
  // packet steering masks). The host's ends always use RPS.
  std::string rx_steering_mode = "napi";
  std::string log_level = "info";
};

// Loads defaults, then the config file if present. A malformed file is an
// error naming the file and the field, never silently ignored.
Result<Config> loadConfig();
Result<Config> parseConfig(const std::string& json_text, const std::string& origin);

}  // namespace offcore
