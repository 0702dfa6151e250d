// Which nodes are alive, and who among them owns what. A node is live while
// it is registered in the cluster state and its agent's heartbeat
// (ClusterStore::heartbeat, every Config::heartbeat_interval_ms) is younger
// than Config::node_expiry_ms. Owners (an EIP's ARP answerer, a fabric-only
// backend's prober) are picked among live nodes only, by rendezvous hashing:
// every agent computes the same answer from the same inputs, and when a node
// leaves only what it owned moves.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>

#include "svc/cluster_store.h"

namespace offcore::svc {

struct Liveness {
  bool live = false;
  uint64_t heartbeat_ms = 0;  // 0 = never heard from
  uint64_t age_ms = 0;        // now - heartbeat_ms (when heard from)
};

// For every registered node.
std::map<std::string, Liveness> nodeLiveness(const ClusterState& state, const std::map<std::string, uint64_t>& beats,
                                             uint64_t now_ms, uint64_t expiry_ms);
std::set<std::string> liveNodes(const std::map<std::string, Liveness>& liveness);

// The live node that owns key ("" when none is live). Deterministic.
std::string ownerOf(const std::string& key, const std::set<std::string>& live);

}  // namespace offcore::svc
