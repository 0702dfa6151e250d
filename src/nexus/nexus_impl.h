// NexusImpl: the nexus's state, shared by nexus.cc (I/O, journal) and
// nexus_rebuild.cc (probe and rebuild). Private to src/nexus.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "nexus/nexus.h"
#include "nexus/region_table.h"

namespace offcore::nexus {

class NexusImpl;
struct Op;

// One replica's part of a request.
struct SubIo final : IoCompletion {
  Op* op = nullptr;
  uint32_t idx = 0;
  void done(Status status) override;
};

// A host request in flight: a read goes to one replica at a time, a write
// to all targets at once from the caller's buffer.
struct Op {
  enum Kind { kRead, kWrite } kind = kRead;
  NexusImpl* nx = nullptr;
  uint64_t off = 0;
  void* rbuf = nullptr;
  const void* wbuf = nullptr;
  size_t len = 0;
  IoCompletion* done = nullptr;
  uint64_t first = 0, last = 0;  // regions (writes)
  int epoch_slot = 0;
  uint32_t targets = 0;                    // replicas the write was sent to
  std::atomic<uint32_t> failed{0};         // ... and which of them failed it
  std::atomic<uint32_t> request_error{0};  // ... of those, which refused the request itself
  std::atomic<int> request_code{0};
  std::atomic<int> pending{0};
  uint32_t tried = 0;  // replicas a read was tried on
  std::string last_error;
  std::array<SubIo, kMaxReplicas> subs;
};

// One region being copied by a rebuild: read from an online replica, then
// written to the one being rebuilt.
struct RegionCopy final : IoCompletion {
  NexusImpl* nx = nullptr;
  uint32_t dst = 0;
  int src = -1;
  uint64_t region = 0, off = 0;
  size_t len = 0;
  void* buf = nullptr;
  bool writing = false;
  void done(Status status) override;
};

struct Replica {
  std::string name;
  std::shared_ptr<BlockDevice> dev;
  std::atomic<ReplicaState> state{ReplicaState::kOnline};
  // Write-intent bitmap: regions written without this replica, in memory
  // (missed) and as last saved (persisted).
  std::unique_ptr<std::atomic<uint64_t>[]> missed, persisted;
  std::atomic<uint64_t> reads{0}, writes{0}, errors{0}, inflight{0};
  std::atomic<uint64_t> rebuild_total{0}, rebuild_done{0};
  std::atomic<bool> rebuild_requested{false};
  mutable std::mutex err_mu;
  std::string last_error;
};

class NexusImpl final : public Nexus {
 public:
  NexusImpl(std::vector<ReplicaDevice> replicas, std::shared_ptr<NexusJournal> journal, const NexusOptions& options,
            uint64_t size, uint32_t block_size);
  ~NexusImpl() override;
  Status start(const std::optional<NexusRecord>& record);

  uint64_t sizeBytes() const override { return size_; }
  uint32_t blockSize() const override { return block_size_; }
  Status read(uint64_t offset, void* buf, size_t len) override;
  Status write(uint64_t offset, const void* buf, size_t len) override;
  Status flush() override;
  Status discard(uint64_t offset, uint64_t len) override;
  Status writeZeroes(uint64_t offset, uint64_t len) override;
  void readAsync(uint64_t offset, void* buf, size_t len, IoCompletion* done) override;
  void writeAsync(uint64_t offset, const void* buf, size_t len, IoCompletion* done) override;
  int completionFd() override { return epoll_fd_; }
  void reapCompletions() override;
  void plug() override;
  void unplug() override;
  std::optional<uint64_t> allocatedBytes() const override;

  NexusStatus status() const override;
  Status rebuild(const std::string& replica) override;
  bool waitIdle(int timeout_ms) override;

  void subDone(Op* op, uint32_t idx, Status status);
  void copyDone(RegionCopy* c, Status status);

 private:
  static const char* kIoError;

  Status validate(uint64_t offset, uint64_t len) const;
  Op* newOp(Op::Kind kind, uint64_t offset, size_t len, IoCompletion* done);
  int pickReadReplica(uint32_t exclude);
  void submitRead(Op* op);
  void startWrite(Op* op);
  void park(Op* op);
  void releaseParked();
  void completeWrite(Op* op);
  // Marks regions first..last missed on each replica in the mask; true if
  // every mark was already durable.
  bool markMissed(uint32_t replicas, uint64_t first, uint64_t last);
  void finish(Op* op, Status status);    // completes on this thread
  void handBack(Op* op, Status status);  // completes on the reaping thread
  void fault(uint32_t idx, const std::string& why);
  Status saveRecord();
  void journalLoop();
  Status mutateSync(uint64_t offset, uint64_t len, const std::function<Status(BlockDevice&, uint64_t, uint64_t)>& fn);

  // nexus_rebuild.cc
  void rebuildLoop();
  bool probe(Replica& r);
  void runRebuild(uint32_t idx);
  void finishCopy(RegionCopy* c, bool copied, const std::string& error);
  void waitEpochDrained();

  const NexusOptions options_;
  const std::shared_ptr<NexusJournal> journal_;
  const uint64_t size_;
  const uint32_t block_size_;
  const uint64_t regions_, words_;
  std::vector<std::unique_ptr<Replica>> replicas_;
  RegionTable table_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<size_t> read_rr_{0};

  // Writes in flight per epoch parity (see waitEpochDrained).
  std::atomic<uint64_t> epoch_{0};
  std::array<std::atomic<int64_t>, 2> epoch_inflight_{};

  std::mutex park_mu_;
  std::vector<Op*> parked_;

  // Polled mode: an epoll fd over the replicas' completion fds and our
  // eventfd, through which other threads hand completions back.
  int epoll_fd_ = -1, event_fd_ = -1;
  std::mutex ready_mu_;
  std::vector<std::pair<IoCompletion*, Status>> ready_;

  std::mutex save_mu_;  // one save at a time; snapshots are taken under it
  std::mutex journal_mu_;
  std::condition_variable journal_cv_;
  std::vector<Op*> journal_queue_;
  bool journal_dirty_ = false, journal_stop_ = false;
  std::thread journal_thread_;

  std::mutex rebuild_mu_;
  std::condition_variable rebuild_cv_;
  bool stop_ = false;
  std::atomic<bool> rebuild_exited_{false};
  // The running rebuild's copies (one rebuild at a time).
  std::mutex copy_mu_;
  std::condition_variable copy_cv_;
  std::vector<RegionCopy*> copy_free_;
  uint64_t copy_bytes_ = 0;
  std::string copy_error_;
  std::thread rebuild_thread_;
};

}  // namespace offcore::nexus
