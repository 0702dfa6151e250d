// The store's metadata as plain data, and the one function that changes it.
//
// The live store, recovery (checkpoint + journal replay), fsck and the fuzzer
// all go through applyRecord(), so "what a record means" is written once:
// recovery cannot disagree with what the live store did before the crash.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/result.h"
#include "storage/cluster_set.h"
#include "storage/volume_store.h"

namespace offcore {

// A map value that is not a physical cluster: the cluster reads as zeroes and
// hides whatever the parent chain holds there.
inline constexpr uint64_t kZeroCluster = ~0ULL;
inline constexpr uint64_t kMaxVolumeBytes = 1ULL << 50;       // 1 PiB
inline constexpr uint64_t kMaxPhysicalClusters = 1ULL << 40;  // far beyond any pool
inline constexpr size_t kMaxAllowedHosts = 256;
inline constexpr size_t kMaxNqnLength = 223;  // NVMe base spec

using ClusterMap = std::map<uint64_t, uint64_t>;  // virtual cluster -> physical or kZeroCluster

inline uint64_t clustersFor(uint64_t bytes) { return (bytes + kClusterSize - 1) / kClusterSize; }

struct VolumeRecord {
  uint64_t id = 0;
  std::string name;
  uint64_t size_bytes = 0;
  bool read_only = false;
  uint64_t parent_id = 0;     // 0: no parent
  std::set<uint64_t> clones;  // ids whose parent_id is this volume (kept redundantly, fsck compares)
  std::vector<std::string> allowed_hosts;
  ClusterMap map;
  uint64_t owned = 0;  // derived: entries of map that are physical clusters
};

enum class RecordType : uint16_t {
  kCreate = 1,    // new_id, name, size
  kDelete = 2,    // id
  kResize = 3,    // id, size
  kSnapshot = 4,  // id (origin), new_id (snapshot), name
  kClone = 5,     // id (snapshot), new_id (clone), name
  kMap = 6,       // id, vcluster, pcluster
  kUnmap = 7,     // id, vcluster, zero (leave a kZeroCluster marker)
  kSetHosts = 8,  // id, hosts
};
const char* recordTypeName(RecordType type);

struct MetaRecord {
  RecordType type = RecordType::kCreate;
  uint64_t seq = 0;
  uint64_t id = 0;
  uint64_t new_id = 0;
  std::string name;
  uint64_t size = 0;
  uint64_t vcluster = 0;
  uint64_t pcluster = 0;
  bool zero = false;
  std::vector<std::string> hosts;
};

struct MetaState {
  uint64_t last_seq = 0;    // the last record reflected here
  uint64_t next_id = 1;     // ids are never reused
  uint64_t high_water = 0;  // physical clusters handed out so far are [0, high_water)
  ClusterSet free;          // within [0, high_water): the complement of all owned clusters
  std::map<uint64_t, VolumeRecord> volumes;
  std::map<std::string, uint64_t> by_name;  // derived
  uint64_t owned = 0;                       // derived: physical clusters owned by some volume

  VolumeRecord* find(uint64_t id);
  const VolumeRecord* find(uint64_t id) const;
  const VolumeRecord* findByName(const std::string& name) const;
  // Rebuilds the derived fields after a checkpoint was decoded.
  void rebuildDerived();
};

// Fails, changing nothing, if r does not fit s (unknown volume, name taken,
// cluster already owned...). The error message names the problem.
Status checkRecord(const MetaState& s, const MetaRecord& r);
// checkRecord, then applies r and sets s.last_seq = r.seq. Clusters the
// record released are appended to freed (if given).
Status applyRecord(MetaState& s, const MetaRecord& r, std::vector<uint64_t>* freed);

// Every invariant of a loaded state, one line per problem. data_clusters:
// whole clusters in data.img, when known. Safe on arbitrary (fuzzed) states.
std::vector<std::string> checkInvariants(const MetaState& s, std::optional<uint64_t> data_clusters);

Status validateHostNqn(const std::string& nqn);

}  // namespace offcore
