#include "storage/store_core.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "base/assert.h"
#include "base/files.h"
#include "base/log.h"
#include "storage/journal.h"

namespace offcore {

Status preadFull(int fd, void* buf, size_t len, uint64_t offset) {
  auto* p = static_cast<char*>(buf);
  while (len > 0) {
    ssize_t n = ::pread(fd, p, len, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errnoError("read data.img", errno);
    if (n == 0) {  // a sparse file's unwritten end
      std::memset(p, 0, len);
      break;
    }
    p += n;
    len -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return okStatus();
}

Status pwriteFull(int fd, const void* buf, size_t len, uint64_t offset) {
  const auto* p = static_cast<const char*>(buf);
  while (len > 0) {
    ssize_t n = ::pwrite(fd, p, len, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errnoError("write", errno);
    p += n;
    len -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return okStatus();
}

Result<std::shared_ptr<StoreCore>> StoreCore::open(const std::string& dir, uint64_t capacity_bytes) {
  std::shared_ptr<StoreCore> core(new StoreCore());
  OC_TRY(core->load(dir, capacity_bytes));
  return core;
}

StoreCore::~StoreCore() {
  for (int fd : {journal_fd_, data_fd_, dir_fd_})
    if (fd >= 0) ::close(fd);
}

Status StoreCore::load(const std::string& dir, uint64_t capacity_bytes) {
  dir_ = dir;
  OC_TRY(makePrivateDir(dir));
  dir_fd_ = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd_ < 0) return errnoError("cannot open " + dir);
  if (::flock(dir_fd_, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) return makeError("already open (here or in another process); close it first", EBUSY);
    return errnoError("flock " + dir);
  }
  const std::string ckpt_path = dir + "/meta.ckpt", journal_path = dir + "/meta.journal";
  if (pathExists(ckpt_path)) {
    OC_ASSIGN_OR_RETURN(std::string bytes, readFile(ckpt_path));
    OC_ASSIGN_OR_RETURN(meta_, decodeCheckpoint(bytes));
  }
  std::string journal;
  if (pathExists(journal_path)) {
    OC_ASSIGN_OR_RETURN(journal, readFile(journal_path));
  }
  OC_ASSIGN_OR_RETURN(JournalScan scan, scanJournal(journal));
  OC_TRY(replayJournal(meta_, scan));
  if (scan.torn_tail)
    spdlog::warn("volume store {}: dropped a torn record at the end of meta.journal (offset {})", dir,
                 scan.valid_bytes);

  data_fd_ = ::open((dir + "/data.img").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (data_fd_ < 0) return errnoError("cannot open " + dir + "/data.img");
  struct stat st;
  if (::fstat(data_fd_, &st) != 0) return errnoError("stat data.img");
  auto problems = checkInvariants(meta_, static_cast<uint64_t>(st.st_size) / kClusterSize);
  if (!problems.empty())
    return makeError(
        "inconsistent metadata: " + problems[0] + " (" + std::to_string(problems.size()) + " problems; run fsck)", EIO);
  journal_fd_ = ::open(journal_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (journal_fd_ < 0) return errnoError("cannot open " + journal_path);
  journal_bytes_ = scan.valid_bytes;
  ::unlink((ckpt_path + ".tmp").c_str());  // a checkpoint that never got renamed

  capacity_bytes_ = capacity_bytes;
  capacity_clusters_ = capacity_bytes / kClusterSize;
  if (capacity_bytes != 0 && capacity_clusters_ == 0) return makeError("capacity is below one 1 MiB cluster", EINVAL);
  mapDataIfInMemory();

  for (auto& [id, rec] : meta_.volumes) {
    auto v = std::make_shared<VolumeState>(id, rec.read_only);
    v->rec = &rec;
    live_.emplace(id, std::move(v));
  }
  for (auto& [id, v] : live_)
    if (v->rec->parent_id != 0) v->parent = live_.at(v->rec->parent_id);

  // Fold the journal into a fresh checkpoint, which also drops a torn tail.
  std::lock_guard lk(meta_mutex_);
  Status folded = checkpointLocked();
  if (!folded.ok()) {
    spdlog::warn("volume store {}: checkpoint at open failed: {}", dir, folded.error().message);
    if (::ftruncate(journal_fd_, static_cast<off_t>(journal_bytes_)) != 0)
      return errnoError("cannot drop the torn tail of " + journal_path);
  }
  return okStatus();
}

// A 4K read from tmpfs through pread is a system call and a page-cache
// lookup; through the mapping, a copy (the target's 4K randread QD32 on one
// core: 2x). Address space only: pools larger than the view read the rest
// with pread.
void StoreCore::mapDataIfInMemory() {
  constexpr uint64_t kMaxViewBytes = 256ULL << 30;
  if (!fileIsInMemory(data_fd_)) return;
  uint64_t bytes = capacity_bytes_ != 0 ? std::min(capacity_clusters_ * kClusterSize, kMaxViewBytes) : kMaxViewBytes;
  auto view = MappedReadView::map(data_fd_, bytes);
  if (!view.ok()) {
    spdlog::warn("volume store {}: reads use pread: {}", dir_, view.error().message);
    return;
  }
  data_view_ = std::move(*view);
}

void StoreCore::close() {
  std::lock_guard lk(meta_mutex_);
  if (closed_) return;
  // An empty journal means meta.ckpt already holds everything durable (only
  // reservations, which are never durable, differ): skip its three fsyncs,
  // which queue behind the writeback of data.img after heavy writes.
  if (!broken_ && journal_bytes_ > 0) {
    Status st = checkpointLocked();
    if (!st.ok())
      spdlog::warn("volume store {}: checkpoint at close failed: {}; the journal is replayed at the next open", dir_,
                   st.error().message);
  }
  closed_.store(true, std::memory_order_release);
  ::close(journal_fd_);
  journal_fd_ = -1;
  ::close(dir_fd_);  // releases the flock; data_fd_ stays for handles still around
  dir_fd_ = -1;
}

Status StoreCore::usableLocked() const {
  if (closed_) return makeError("volume store " + dir_ + " is closed", kBlockIo);
  if (broken_)
    return makeError("volume store " + dir_ + " stopped after its journal failed to sync; reopen it", kBlockIo);
  return okStatus();
}

Status StoreCore::checkpoint() {
  std::lock_guard lk(meta_mutex_);
  OC_TRY(usableLocked());
  return checkpointLocked();
}

Status StoreCore::checkpointLocked() {
  // Reserved clusters are recorded as free: their map record, if it ever
  // comes, follows this checkpoint and takes them off the list again.
  ClusterSet free = meta_.free;
  for (uint64_t pc : reserved_) free.insert(pc);
  const std::string path = dir_ + "/meta.ckpt";
  OC_TRY(writeFileAtomic(path, encodeCheckpoint(meta_, free)));  // tmp, fsync, rename
  if (::fsync(dir_fd_) != 0) return errnoError("fsync " + dir_);
  // Until this truncation, replay skips the records the checkpoint holds.
  if (::ftruncate(journal_fd_, 0) != 0 || ::fdatasync(journal_fd_) != 0)
    return errnoError("truncate " + dir_ + "/meta.journal");
  journal_bytes_ = 0;
  return okStatus();
}

Status StoreCore::appendLocked(const MetaRecord& r) {
  const std::string bytes = encodeRecord(r);
  Status st = pwriteFull(journal_fd_, bytes.data(), bytes.size(), journal_bytes_);
  if (!st.ok()) {
    // Never leave half a record in front of the next one.
    if (::ftruncate(journal_fd_, static_cast<off_t>(journal_bytes_)) != 0) broken_ = true;
    return st.error().wrap("append to " + dir_ + "/meta.journal");
  }
  if (::fdatasync(journal_fd_) != 0) {
    broken_ = true;  // whether the record is durable is now unknown
    return errnoError("fsync " + dir_ + "/meta.journal");
  }
  journal_bytes_ += bytes.size();
  return okStatus();
}

Status StoreCore::commitLocked(MetaRecord r, VolumeState* lock_map, const std::function<void()>& under_lock) {
  OC_TRY(usableLocked());
  r.seq = meta_.last_seq + 1;
  OC_TRY(checkRecord(meta_, r));
  OC_TRY(appendLocked(r));
  std::vector<uint64_t> freed;
  {
    std::unique_lock<std::shared_mutex> map_lock;
    if (lock_map) map_lock = std::unique_lock(lock_map->map_mutex);
    Status applied = applyRecord(meta_, r, &freed);
    OC_ASSERT(applied.ok(), "a checked journal record failed to apply");
    if (under_lock) under_lock();
  }
  // Give the space back to the filesystem. Still under meta_mutex_, so no
  // one has reallocated these clusters yet.
  for (uint64_t pc : freed) punchHole(pc);
  if (journal_bytes_ > kJournalCheckpointBytes) {
    Status st = checkpointLocked();
    if (!st.ok()) spdlog::warn("volume store {}: checkpoint failed: {}", dir_, st.error().message);
  }
  return okStatus();
}

void StoreCore::punchHole(uint64_t pc) {
  // Best effort: a filesystem without hole punching just keeps the blocks.
  (void)::fallocate(data_fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(pc * kClusterSize),
                    static_cast<off_t>(kClusterSize));
}

Result<uint64_t> StoreCore::reserveCluster() {
  std::lock_guard lk(meta_mutex_);
  OC_TRY(usableLocked());
  const uint64_t limit = capacity_clusters_ != 0 ? capacity_clusters_ : kMaxPhysicalClusters;
  uint64_t pc;
  auto lowest = meta_.free.lowest();
  if (lowest && *lowest < limit) {
    pc = *lowest;
    meta_.free.erase(pc);
  } else if (meta_.high_water < limit) {
    pc = meta_.high_water++;
  } else {
    return makeError("volume store " + dir_ + " is full (" + std::to_string(capacity_bytes_ >> 20) +
                         " MiB in use): delete volumes or snapshots, or reopen it with a larger capacity",
                     kBlockNoSpace);
  }
  reserved_.insert(pc);
  return pc;
}

void StoreCore::releaseCluster(uint64_t pc) {
  std::lock_guard lk(meta_mutex_);
  reserved_.erase(pc);
  meta_.free.insert(pc);
}

Status StoreCore::commitMap(VolumeState& v, uint64_t vcluster, uint64_t pc) {
  std::lock_guard lk(meta_mutex_);
  // Back on the free list: applying the record takes it off again, exactly
  // as replay does.
  reserved_.erase(pc);
  meta_.free.insert(pc);
  MetaRecord r;
  r.type = RecordType::kMap;
  r.id = v.id;
  r.vcluster = vcluster;
  r.pcluster = pc;
  return commitLocked(std::move(r), &v);
}

Status StoreCore::commitUnmap(VolumeState& v, uint64_t vcluster, bool zero_marker) {
  std::lock_guard lk(meta_mutex_);
  MetaRecord r;
  r.type = RecordType::kUnmap;
  r.id = v.id;
  r.vcluster = vcluster;
  r.zero = zero_marker;
  return commitLocked(std::move(r), &v);
}

}  // namespace offcore
