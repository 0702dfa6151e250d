// StoreCore: the state behind a VolumeStore and its volume handles. Handles
// share ownership of it, so a handle that outlives the store fails cleanly
// ("store closed") instead of touching freed memory.
//
// Locks, always taken in this order:
//   VolumeState::write_mutex  serialises map changes of one volume (cluster
//                             allocation, discard, snapshot); held across
//                             the copy-on-write I/O and the fsyncs
//   StoreCore::meta_mutex_    the MetaState, the free list, the journal
//   VolumeState::map_mutex    shared by I/O that reads the volume's map;
//                             exclusive only while a record changes it
// A map changes only with meta_mutex_ and map_mutex (exclusive) both held,
// so whoever holds meta_mutex_ may read every map (the checkpoint does).
// A snapshot's map and parent never change (it is read-only and cannot be
// deleted while it has clones), so reads through a parent chain lock only
// the volume they start from.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <string>
#include <vector>

#include "base/mapped_file.h"
#include "base/result.h"
#include "storage/meta_state.h"

namespace offcore {

inline constexpr uint64_t kJournalCheckpointBytes = 4ULL << 20;

struct VolumeState {
  VolumeState(uint64_t id_, bool read_only_) : id(id_), read_only(read_only_) {}
  const uint64_t id;
  const bool read_only;
  VolumeRecord* rec = nullptr;          // node in the core's MetaState; map, size under map_mutex
  std::shared_ptr<VolumeState> parent;  // under map_mutex (fixed for snapshots)
  mutable std::shared_mutex map_mutex;
  std::mutex write_mutex;
  std::atomic<int> handles{0};
};

class StoreCore : public std::enable_shared_from_this<StoreCore> {
 public:
  static Result<std::shared_ptr<StoreCore>> open(const std::string& dir, uint64_t capacity_bytes);
  ~StoreCore();
  StoreCore(const StoreCore&) = delete;
  StoreCore& operator=(const StoreCore&) = delete;

  // Checkpoints and releases the directory lock; handles fail from now on.
  void close();
  bool closed() const { return closed_.load(std::memory_order_acquire); }

  // Store operations (VolumeStore's interface).
  Status create(const std::string& name, uint64_t size_bytes);
  Status remove(const std::string& name);
  Status resize(const std::string& name, uint64_t new_size_bytes);
  Status snapshot(const std::string& volume, const std::string& snapshot_name);
  Status clone(const std::string& snapshot_name, const std::string& clone_name);
  Status setAllowedHosts(const std::string& name, const std::vector<std::string>& host_nqns);
  Result<VolumeInfo> info(const std::string& name) const;
  std::vector<VolumeInfo> list() const;
  StoreStats stats() const;
  Result<std::shared_ptr<VolumeState>> acquire(const std::string& name);
  Status checkpoint();

  // For volume I/O. A new cluster is reserved (off the free list, not yet
  // owned), filled and synced by the caller, then committed with a map
  // record or released.
  Result<uint64_t> reserveCluster();
  void releaseCluster(uint64_t pc);
  // Caller holds v.write_mutex. On failure the cluster is released.
  Status commitMap(VolumeState& v, uint64_t vcluster, uint64_t pc);
  // Frees what v maps at vcluster; leaves a zero marker if zero_marker.
  Status commitUnmap(VolumeState& v, uint64_t vcluster, bool zero_marker);
  int dataFd() const { return data_fd_; }
  // data.img mapped for reading when it lives in memory (tmpfs); null
  // otherwise. Only clusters a map points at are read through it, and those
  // lie inside the file (load checks it; a new cluster is written first).
  const MappedReadView* dataView() const { return data_view_.get(); }

 private:
  StoreCore() = default;
  Status load(const std::string& dir, uint64_t capacity_bytes);
  // Validates r, appends it (fsync'd), applies it holding lock_map's
  // map_mutex exclusively, runs under_lock inside that lock, then frees
  // released clusters' space. Needs meta_mutex_.
  Status commitLocked(MetaRecord r, VolumeState* lock_map, const std::function<void()>& under_lock = {});
  Status appendLocked(const MetaRecord& r);
  Status checkpointLocked();
  Status usableLocked() const;
  Result<std::shared_ptr<VolumeState>> findLocked(const std::string& name) const;
  VolumeInfo infoLocked(const VolumeRecord& v) const;
  void punchHole(uint64_t pc);
  void mapDataIfInMemory();

  std::string dir_;
  int dir_fd_ = -1;  // holds the store's flock
  int data_fd_ = -1;
  int journal_fd_ = -1;
  std::unique_ptr<MappedReadView> data_view_;
  uint64_t journal_bytes_ = 0;
  uint64_t capacity_clusters_ = 0;  // 0: unbounded
  uint64_t capacity_bytes_ = 0;

  mutable std::mutex meta_mutex_;
  MetaState meta_;
  std::map<uint64_t, std::shared_ptr<VolumeState>> live_;
  std::set<uint64_t> reserved_;
  bool broken_ = false;  // an fsync failed: the journal's state is unknown
  std::atomic<bool> closed_{false};
};

}  // namespace offcore

namespace offcore {

// The BlockDevice for one volume (volume_io.cc). Counts itself in
// v->handles; the caller has already incremented it.
std::shared_ptr<BlockDevice> makeVolumeHandle(std::shared_ptr<StoreCore> core, std::shared_ptr<VolumeState> v);

// Whole-buffer pread/pwrite that retry short transfers and EINTR. A read
// past the end of the file yields zeroes.
Status preadFull(int fd, void* buf, size_t len, uint64_t offset);
Status pwriteFull(int fd, const void* buf, size_t len, uint64_t offset);

}  // namespace offcore
