#include "svc/liveness.h"

#include <xxhash.h>

namespace offcore::svc {

std::map<std::string, Liveness> nodeLiveness(const ClusterState& state, const std::map<std::string, uint64_t>& beats,
                                             uint64_t now_ms, uint64_t expiry_ms) {
  std::map<std::string, Liveness> out;
  for (const auto& [name, node] : state.nodes) {
    Liveness l;
    if (auto it = beats.find(name); it != beats.end() && it->second > 0) {
      l.heartbeat_ms = it->second;
      l.age_ms = now_ms > it->second ? now_ms - it->second : 0;  // a clock step back is not an expiry
      l.live = l.age_ms < expiry_ms;
    }
    out[name] = l;
  }
  return out;
}

std::set<std::string> liveNodes(const std::map<std::string, Liveness>& liveness) {
  std::set<std::string> out;
  for (const auto& [name, l] : liveness) {
    if (l.live) out.insert(name);
  }
  return out;
}

std::string ownerOf(const std::string& key, const std::set<std::string>& live) {
  std::string best;
  uint64_t best_score = 0;
  for (const auto& node : live) {
    std::string seed = node + "\n" + key;
    uint64_t score = XXH64(seed.data(), seed.size(), 0);
    // Ties (practically never) go to the first by name: live is ordered.
    if (best.empty() || score > best_score) {
      best = node;
      best_score = score;
    }
  }
  return best;
}

}  // namespace offcore::svc
