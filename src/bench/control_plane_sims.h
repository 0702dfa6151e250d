// Simulated nodes for `offcore bench control-plane` (control_plane_suite.cc).
//
// Three kinds, all with their own store client and lease:
//  - agent: an agent's whole control plane without its dataplane: the
//    store's watch (and, on etcd, its watch-fed cache), the node's state
//    brought up to date by each delta, a ServiceProgrammer writing into a
//    dataplane that only counts, and the programmed generation reported
//    as an agent does. Memory: a whole state per node.
//  - watcher (etcd only): holds a lease and a watch of the prefix, decodes
//    every event as the cache does, keeps only what it counts. Stands in
//    for nodes past the agents this machine has memory and cpus for.
//  - the directory store's agents use the agent kind: on every
//    notification they parse state.json and program everything.
// A change is programmed on a node when its programmed state (agent) or its
// decoded events (watcher) hold the Service.
//
// Threads: every node lives on one of two loops (this machine's cpus);
// etcd watch threads deliver to them. Everything a node owns is touched
// on its loop only, but its lease, which one more thread renews (a store's
// heartbeat may be called from any thread); the change bookkeeping is
// under mu_.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/config.h"
#include "base/event_loop.h"
#include "base/result.h"
#include "svc/cluster_store.h"

namespace offcore::bench {

// The preloaded cluster: `nodes` node records (sim0..), one Subnet, and
// per Service `per_service` pod Backends each with an endpoint on a node.
struct ClusterShape {
  int nodes = 10;
  int services = 1000;
  int per_service = 5;  // backends (and pod endpoints) per Service
};
// Writes it through storage, validated as an apply is (ClusterStore's rules).
Status preloadCluster(svc::ClusterStore& store, svc::StateStorage& storage, const ClusterShape& shape);
// A Service selecting the backends of preloaded Service `like`.
svc::Resource changeService(const std::string& name, int like);

class SimNodes {
 public:
  SimNodes();
  ~SimNodes();
  SimNodes(const SimNodes&) = delete;
  SimNodes& operator=(const SimNodes&) = delete;

  // n nodes: the first `agents` are agents, the rest watchers (etcd only).
  Status start(const Config& config, int n, int agents);
  // Applies docs through writer and waits (timeout) until every node has
  // `service` programmed; returns each node's latency in ms.
  Result<std::vector<double>> change(svc::ClusterStore& writer, const std::vector<svc::Resource>& docs,
                                     const std::string& service, std::chrono::seconds timeout);
  // How long each change's apply took the writer (until its commit returned), ms.
  std::vector<double> applyMs() const;
  // Per-change work on the agents (refresh + program), ms, every change so far.
  std::vector<double> agentWorkMs() const;
  // One whole reprogramming of agent 0's state, as a reconcile did before
  // deltas (the same programmer, told everything changed), ms.
  Result<double> fullPassMs();
  void stop();

 private:
  struct Node;
  // An agent's reconcile, on its loop: its state brought up to date, then programmed.
  void reconcile(size_t at, const svc::StateDelta& delta);
  void seen(size_t i);
  // The lease thread: every node's lease renewed once per period, evenly spread.
  void renewLeases(std::chrono::milliseconds period);
  static void sync(EventLoop& loop, const std::function<void()>& fn);

  EventLoop loops_[2];
  std::vector<std::thread> threads_;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::thread leases_;
  std::mutex lease_mu_;
  std::condition_variable lease_cv_;
  bool stop_leases_ = false;  // guarded by lease_mu_
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string want_;             // guarded by mu_
  std::vector<double> seen_ms_;  // per node, -1 = not yet
  std::vector<double> work_ms_;
  std::vector<double> apply_ms_;
  std::chrono::steady_clock::time_point t0_;
};

}  // namespace offcore::bench
