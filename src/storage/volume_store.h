// VolumeStore: thin-provisioned logical volumes with snapshots and clones,
// the storage node's back end (the seed's SPDK lvol store).
//
// Layout under the data directory (docs/STORAGE.md has the details):
//   data.img      clusters of kClusterSize bytes, sparse, grown on demand
//   meta.ckpt     the last checkpoint of all metadata (atomic rename)
//   meta.journal  records appended since that checkpoint, each checksummed
//                 and fsync'd before the change it describes is acknowledged
//
// Model: a volume maps its virtual clusters to physical clusters it owns; an
// unmapped cluster reads from the parent (a snapshot) or as zeroes. Taking a
// snapshot of V moves V's map into a new read-only volume S and makes V an
// empty clone of S, so nothing is copied. A clone of S is a new empty volume
// whose parent is S. Chains may be any depth. A snapshot with clones cannot
// be deleted. Each physical cluster is owned by exactly one volume.
//
// Threading: every public member is thread-safe. Data I/O to clusters a
// volume already owns takes no store-wide lock; allocation and metadata
// changes serialise on the store's metadata mutex.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "block/block_device.h"

namespace offcore {

inline constexpr uint64_t kClusterSize = 1ULL << 20;  // 1 MiB
inline constexpr uint32_t kVolumeBlockSize = 4096;

struct VolumeInfo {
  uint64_t id = 0;
  std::string name;
  uint64_t size_bytes = 0;
  bool read_only = false;                  // snapshots are read-only
  std::optional<std::string> parent;       // the snapshot this volume reads through to
  std::vector<std::string> clones;         // volumes whose parent is this one
  uint64_t allocated_bytes = 0;            // clusters this volume owns * kClusterSize
  std::vector<std::string> allowed_hosts;  // host NQNs; empty = any host
};

struct StoreStats {
  uint64_t capacity_bytes = 0;   // the pool's limit (data.img may not exceed it)
  uint64_t allocated_bytes = 0;  // clusters in use
  uint64_t volumes = 0;
  bool reads_mapped = false;  // data.img is in memory and read through a mapping, not pread
};

struct FsckReport {
  bool clean = true;
  std::vector<std::string> problems;  // one line each
  uint64_t volumes = 0;
  uint64_t clusters_in_use = 0;
  uint64_t journal_records = 0;
  bool torn_tail = false;  // a half-written last record (a crash mid-append), dropped
};

class VolumeStore {
 public:
  // Opens (creating if empty) the store in dir. capacity_bytes bounds the
  // pool; 0 = no bound beyond the filesystem's.
  static Result<std::unique_ptr<VolumeStore>> open(const std::string& dir, uint64_t capacity_bytes);
  // Reads a closed store and checks every invariant without changing it.
  static Result<FsckReport> fsck(const std::string& dir);

  virtual ~VolumeStore() = default;

  virtual Status create(const std::string& name, uint64_t size_bytes) = 0;
  virtual Status remove(const std::string& name) = 0;
  virtual Status resize(const std::string& name, uint64_t new_size_bytes) = 0;  // grow only
  virtual Status snapshot(const std::string& volume, const std::string& snapshot_name) = 0;
  virtual Status clone(const std::string& snapshot_name, const std::string& clone_name) = 0;
  virtual Status setAllowedHosts(const std::string& name, const std::vector<std::string>& host_nqns) = 0;

  virtual Result<VolumeInfo> info(const std::string& name) const = 0;
  virtual std::vector<VolumeInfo> list() const = 0;
  virtual StoreStats stats() const = 0;

  // A handle for I/O; stays valid while the volume exists. Deleting a volume
  // with open handles fails with EBUSY.
  virtual Result<std::shared_ptr<BlockDevice>> openVolume(const std::string& name) = 0;

  // Writes a checkpoint and truncates the journal.
  virtual Status checkpoint() = 0;
};

// Volume names: 1-64 of [a-zA-Z0-9._-], not starting with '.' or '-'.
Status validateVolumeName(const std::string& name);

}  // namespace offcore
