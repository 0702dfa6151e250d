// The nexus's I/O paths: reads, writes (fan-out), the write-intent bitmap
// and the journal thread. The rebuild thread is nexus_rebuild.cc.
#include "nexus/nexus_impl.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <bit>

#include "base/log.h"

namespace offcore::nexus {

const char* NexusImpl::kIoError = "every replica failed";

void SubIo::done(Status status) { op->nx->subDone(op, idx, std::move(status)); }

NexusImpl::NexusImpl(std::vector<ReplicaDevice> replicas, std::shared_ptr<NexusJournal> journal,
                     const NexusOptions& options, uint64_t size, uint32_t block_size)
    : options_(options),
      journal_(std::move(journal)),
      size_(size),
      block_size_(block_size),
      regions_((size + options.region_bytes - 1) / options.region_bytes),
      words_((regions_ + 63) / 64),
      table_(regions_) {
  for (auto& r : replicas) {
    auto rep = std::make_unique<Replica>();
    rep->name = std::move(r.name);
    rep->dev = std::move(r.device);
    rep->missed = std::make_unique<std::atomic<uint64_t>[]>(words_);
    rep->persisted = std::make_unique<std::atomic<uint64_t>[]>(words_);
    replicas_.push_back(std::move(rep));
  }
}

NexusImpl::~NexusImpl() {
  {
    std::lock_guard<std::mutex> l(rebuild_mu_);
    stop_ = true;
  }
  rebuild_cv_.notify_all();
  // The rebuild thread may be in a synchronous replica call. With polled
  // replicas only a reaper completes it, and the disk's loop (the usual
  // one) is gone by now: reap here until the thread is out.
  while (rebuild_thread_.joinable() && !rebuild_exited_.load()) {
    if (epoll_fd_ >= 0) {
      epoll_event ev;
      (void)::epoll_wait(epoll_fd_, &ev, 1, 10);
      reapCompletions();
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  if (rebuild_thread_.joinable()) rebuild_thread_.join();
  {
    std::lock_guard<std::mutex> l(journal_mu_);
    journal_stop_ = true;
  }
  journal_cv_.notify_all();
  if (journal_thread_.joinable()) journal_thread_.join();
  reapCompletions();  // what the journal thread handed back last
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
  if (event_fd_ >= 0) ::close(event_fd_);
}

Status NexusImpl::start(const std::optional<NexusRecord>& record) {
  // Polled replicas complete only when reaped: the nexus is then polled too,
  // and its completion fd covers theirs and its own hand-back eventfd.
  size_t polled = 0;
  for (auto& r : replicas_) polled += r->dev->completionFd() >= 0;
  if (polled != 0 && polled != replicas_.size()) {
    return makeError("nexus: replicas mix polled and threaded completion");
  }
  if (polled != 0) {
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    event_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (epoll_fd_ < 0 || event_fd_ < 0) return errnoError("nexus: epoll/eventfd");
    auto add = [&](int fd) -> Status {
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.fd = fd;
      if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) return errnoError("nexus: epoll_ctl");
      return okStatus();
    };
    for (auto& r : replicas_) OC_TRY(add(r->dev->completionFd()));
    OC_TRY(add(event_fd_));
  }
  // What the record knows; a replica it does not know is new, its contents
  // unknown: every region missed.
  bool changed = !record.has_value();
  if (record) generation_ = record->generation;
  for (auto& r : replicas_) {
    const ReplicaRecord* known = nullptr;
    if (record) {
      for (const auto& rr : record->replicas) {
        if (rr.name == r->name) known = &rr;
      }
    }
    if (record && !known) {
      r->state = ReplicaState::kFaulted;
      for (uint64_t w = 0; w < words_; ++w) r->missed[w] = ~uint64_t{0};
      if (regions_ % 64) r->missed[words_ - 1] = (uint64_t{1} << (regions_ % 64)) - 1;
      r->last_error = "new replica: its contents are unknown until rebuilt";
      changed = true;
      continue;
    }
    if (!known) continue;
    // A rebuild the process did not finish starts again from its bitmap.
    r->state = known->state == ReplicaState::kOnline ? ReplicaState::kOnline : ReplicaState::kFaulted;
    for (uint64_t w = 0; w < words_ && w < known->missed.size(); ++w) {
      r->missed[w] = known->missed[w];
      r->persisted[w] = known->missed[w];
    }
    if (r->state != ReplicaState::kOnline) r->last_error = "behind since before this start (journal)";
  }
  if (record && record->replicas.size() != replicas_.size()) changed = true;
  if (changed) OC_TRY(saveRecord());
  journal_thread_ = std::thread([this] { journalLoop(); });
  rebuild_thread_ = std::thread([this] { rebuildLoop(); });
  return okStatus();
}

// --- reads ---------------------------------------------------------------

Op* NexusImpl::newOp(Op::Kind kind, uint64_t offset, size_t len, IoCompletion* done) {
  auto* op = new Op;
  op->nx = this;
  op->kind = kind;
  op->off = offset;
  op->len = len;
  op->done = done;
  return op;
}

void NexusImpl::readAsync(uint64_t offset, void* buf, size_t len, IoCompletion* done) {
  if (options_.gate) options_.gate();
  if (Status v = validate(offset, len); !v.ok()) return done->done(v);
  Op* op = newOp(Op::kRead, offset, len, done);
  op->rbuf = buf;
  submitRead(op);
}

int NexusImpl::pickReadReplica(uint32_t exclude) {
  int best = -1;
  uint64_t best_load = 0;
  size_t n = replicas_.size();
  size_t start = read_rr_.fetch_add(1, std::memory_order_relaxed) % n;
  for (size_t k = 0; k < n; ++k) {
    size_t i = (start + k) % n;
    if (exclude >> i & 1) continue;
    if (replicas_[i]->state.load() != ReplicaState::kOnline) continue;
    uint64_t load = replicas_[i]->inflight.load(std::memory_order_relaxed);
    if (best < 0 || load < best_load) best = static_cast<int>(i), best_load = load;
  }
  return best;
}

void NexusImpl::submitRead(Op* op) {
  int i = pickReadReplica(op->tried);
  if (i < 0) {
    Status st = op->last_error.empty() ? makeError("nexus: no online replica to read from", kBlockIo)
                                       : makeError("nexus: read failed on every replica: " + op->last_error, kBlockIo);
    return finish(op, std::move(st));
  }
  op->tried |= 1u << i;
  op->subs[0].op = op;
  op->subs[0].idx = static_cast<uint32_t>(i);
  Replica& r = *replicas_[static_cast<size_t>(i)];
  r.inflight.fetch_add(1, std::memory_order_relaxed);
  r.reads.fetch_add(1, std::memory_order_relaxed);
  r.dev->readAsync(op->off, op->rbuf, op->len, &op->subs[0]);
}

// --- writes --------------------------------------------------------------

void NexusImpl::writeAsync(uint64_t offset, const void* buf, size_t len, IoCompletion* done) {
  if (options_.gate) options_.gate();
  if (Status v = validate(offset, len); !v.ok()) return done->done(v);
  Op* op = newOp(Op::kWrite, offset, len, done);
  op->wbuf = buf;
  op->first = offset / options_.region_bytes;
  op->last = (offset + len - 1) / options_.region_bytes;
  startWrite(op);
}

void NexusImpl::startWrite(Op* op) {
  if (!table_.enter(op->first, op->last)) return park(op);
  // Counted in the epoch it read: a replica entering rebuild waits for
  // every write of the previous epoch (nexus_rebuild.cc).
  op->epoch_slot = static_cast<int>(epoch_.load() & 1);
  epoch_inflight_[op->epoch_slot].fetch_add(1);
  uint32_t targets = 0;
  for (size_t i = 0; i < replicas_.size(); ++i) {
    if (replicas_[i]->state.load() != ReplicaState::kFaulted) targets |= 1u << i;
  }
  op->targets = targets;
  if (targets == 0) return completeWrite(op);
  // One reference per replica plus ours, so no completion can finish the
  // op before every replica has it.
  op->pending.store(std::popcount(targets) + 1);
  for (size_t i = 0; i < replicas_.size(); ++i) {
    if (!(targets >> i & 1)) continue;
    op->subs[i].op = op;
    op->subs[i].idx = static_cast<uint32_t>(i);
    Replica& r = *replicas_[i];
    r.inflight.fetch_add(1, std::memory_order_relaxed);
    r.writes.fetch_add(1, std::memory_order_relaxed);
    r.dev->writeAsync(op->off, op->wbuf, op->len, &op->subs[i]);
  }
  if (op->pending.fetch_sub(1) == 1) completeWrite(op);
}

void NexusImpl::park(Op* op) {
  std::unique_lock<std::mutex> l(park_mu_);
  // The rebuild may have unlocked in between: then start again.
  if (!table_.anyLocked(op->first, op->last)) {
    l.unlock();
    return startWrite(op);
  }
  parked_.push_back(op);
}

void NexusImpl::releaseParked() {
  std::vector<Op*> ready;
  {
    std::lock_guard<std::mutex> l(park_mu_);
    auto keep =
        std::partition(parked_.begin(), parked_.end(), [&](Op* op) { return table_.anyLocked(op->first, op->last); });
    ready.assign(keep, parked_.end());
    parked_.erase(keep, parked_.end());
  }
  for (Op* op : ready) startWrite(op);
}

namespace {

// An error about the request itself (a read-only volume, past its end,
// malformed) is the same on every replica: it fails the request and faults
// no replica.
bool requestError(const Status& st) {
  int c = st.error().code;
  return c == kBlockReadOnly || c == kBlockOutOfRange || c == kBlockInvalid;
}

}  // namespace

void NexusImpl::subDone(Op* op, uint32_t idx, Status status) {
  Replica& r = *replicas_[idx];
  r.inflight.fetch_sub(1, std::memory_order_relaxed);
  if (op->kind == Op::kRead) {
    if (status.ok()) return finish(op, okStatus());
    if (requestError(status)) return finish(op, status);
    fault(idx, status.error().message);
    op->last_error = r.name + ": " + status.error().message;
    return submitRead(op);  // the next online replica
  }
  if (!status.ok()) {
    op->failed.fetch_or(1u << idx);
    if (requestError(status)) {
      op->request_error.fetch_or(1u << idx);
      int expected = 0;
      op->request_code.compare_exchange_strong(expected, status.error().code);
    } else {
      fault(idx, status.error().message);
    }
  }
  if (op->pending.fetch_sub(1) == 1) completeWrite(op);
}

void NexusImpl::completeWrite(Op* op) {
  uint32_t ok = op->targets & ~op->failed.load();
  if (ok == 0) {
    table_.exit(op->first, op->last);
    epoch_inflight_[op->epoch_slot].fetch_sub(1);
    if (int code = op->request_code.load(); code != 0) {
      return finish(op, makeError("nexus: write refused by the replicas (" +
                                      std::string(code == kBlockReadOnly ? "read-only" : "bad request") + ")",
                                  code));
    }
    return finish(op, makeError(std::string("nexus: write failed: ") + kIoError, kBlockIo));
  }
  // A replica that refused what another took has diverged: it is faulted
  // (and its regions marked below) like one that failed.
  for (uint32_t i = 0; i < replicas_.size(); ++i) {
    if (op->request_error.load() >> i & 1) fault(i, "refused a write another replica took");
  }
  // Every replica that lacks this write has its regions marked missed
  // before the regions are left (a rebuild then sees the mark) and before
  // the write is acknowledged (the mark is durable first).
  bool durable = markMissed(~ok, op->first, op->last);
  table_.exit(op->first, op->last);
  epoch_inflight_[op->epoch_slot].fetch_sub(1);
  if (durable) return finish(op, okStatus());
  {
    std::lock_guard<std::mutex> l(journal_mu_);
    journal_queue_.push_back(op);
  }
  journal_cv_.notify_one();
}

bool NexusImpl::markMissed(uint32_t replicas, uint64_t first, uint64_t last) {
  bool durable = true;
  for (size_t i = 0; i < replicas_.size(); ++i) {
    if (!(replicas >> i & 1)) continue;
    Replica& r = *replicas_[i];
    for (uint64_t w = first / 64; w <= last / 64; ++w) {
      uint64_t lo = w == first / 64 ? first % 64 : 0, hi = w == last / 64 ? last % 64 : 63;
      uint64_t mask = (hi == 63 ? ~uint64_t{0} : (uint64_t{1} << (hi + 1)) - 1) & ~((uint64_t{1} << lo) - 1);
      r.missed[w].fetch_or(mask);
      if ((r.persisted[w].load() & mask) != mask) durable = false;
    }
  }
  return durable;
}

// --- completions ------------------------------------------------------------

void NexusImpl::finish(Op* op, Status status) {
  IoCompletion* done = op->done;
  delete op;
  done->done(std::move(status));
}

void NexusImpl::handBack(Op* op, Status status) {
  if (event_fd_ < 0) return finish(op, std::move(status));
  {
    std::lock_guard<std::mutex> l(ready_mu_);
    ready_.emplace_back(op->done, std::move(status));
  }
  delete op;
  uint64_t one = 1;
  (void)!::write(event_fd_, &one, sizeof one);
}

void NexusImpl::reapCompletions() {
  for (auto& r : replicas_) r->dev->reapCompletions();
  if (event_fd_ < 0) return;
  uint64_t n;
  (void)!::read(event_fd_, &n, sizeof n);
  std::vector<std::pair<IoCompletion*, Status>> ready;
  {
    std::lock_guard<std::mutex> l(ready_mu_);
    ready.swap(ready_);
  }
  for (auto& [done, st] : ready) done->done(std::move(st));
}

void NexusImpl::plug() {
  for (auto& r : replicas_) r->dev->plug();
}
void NexusImpl::unplug() {
  for (auto& r : replicas_) r->dev->unplug();
}

// --- faults and the journal -------------------------------------------------

void NexusImpl::fault(uint32_t idx, const std::string& why) {
  Replica& r = *replicas_[idx];
  r.errors.fetch_add(1, std::memory_order_relaxed);
  ReplicaState s = r.state.load();
  bool changed = false;
  while (s != ReplicaState::kFaulted) {
    if (r.state.compare_exchange_weak(s, ReplicaState::kFaulted)) {
      changed = true;
      break;
    }
  }
  if (!changed) return;
  {
    std::lock_guard<std::mutex> l(r.err_mu);
    r.last_error = why;
  }
  generation_.fetch_add(1);
  size_t online = 0;
  for (auto& o : replicas_) online += o->state.load() == ReplicaState::kOnline;
  spdlog::warn("nexus: replica {} faulted ({}); {} replica(s) online", r.name, why, online);
  {
    std::lock_guard<std::mutex> l(journal_mu_);
    journal_dirty_ = true;
  }
  journal_cv_.notify_one();
  rebuild_cv_.notify_all();
}

Status NexusImpl::saveRecord() {
  std::lock_guard<std::mutex> l(save_mu_);
  NexusRecord rec;
  rec.generation = generation_.load();
  rec.region_bytes = options_.region_bytes;
  rec.size_bytes = size_;
  for (auto& r : replicas_) {
    ReplicaRecord rr;
    rr.name = r->name;
    rr.state = r->state.load();
    rr.missed.resize(words_);
    for (uint64_t w = 0; w < words_; ++w) rr.missed[w] = r->missed[w].load();
    rec.replicas.push_back(std::move(rr));
  }
  Status st = journal_->save(rec);
  if (!st.ok()) return st.error().wrap("nexus: save the replicas' state");
  for (size_t i = 0; i < replicas_.size(); ++i) {
    for (uint64_t w = 0; w < words_; ++w) replicas_[i]->persisted[w].store(rec.replicas[i].missed[w]);
  }
  return okStatus();
}

void NexusImpl::journalLoop() {
  for (;;) {
    std::vector<Op*> ops;
    {
      std::unique_lock<std::mutex> l(journal_mu_);
      journal_cv_.wait(l, [&] { return journal_stop_ || journal_dirty_ || !journal_queue_.empty(); });
      if (journal_queue_.empty() && !journal_dirty_) return;  // stopping, nothing owed
      ops.swap(journal_queue_);
      journal_dirty_ = false;
    }
    Status st = saveRecord();
    if (!st.ok()) spdlog::error("{}", st.error().message);
    // A write whose missed regions could not be recorded is failed: it must
    // not be acknowledged while a replica silently lacks it.
    for (Op* op : ops) handBack(op, st.ok() ? okStatus() : Status(makeError(st.error().message, kBlockIo)));
  }
}

// --- synchronous calls ------------------------------------------------------

namespace {

struct SyncWait final : IoCompletion {
  std::mutex m;
  std::condition_variable cv;
  bool fin = false;
  Status st = okStatus();
  void done(Status s) override {
    std::lock_guard<std::mutex> l(m);
    st = std::move(s);
    fin = true;
    cv.notify_all();
  }
  Status wait() {
    std::unique_lock<std::mutex> l(m);
    cv.wait(l, [&] { return fin; });
    return st;
  }
};

}  // namespace

Status NexusImpl::read(uint64_t offset, void* buf, size_t len) {
  SyncWait w;
  readAsync(offset, buf, len, &w);
  return w.wait();
}

Status NexusImpl::write(uint64_t offset, const void* buf, size_t len) {
  SyncWait w;
  writeAsync(offset, buf, len, &w);
  return w.wait();
}

Status NexusImpl::flush() {
  bool any = false;
  std::string last;
  for (size_t i = 0; i < replicas_.size(); ++i) {
    Replica& r = *replicas_[i];
    if (r.state.load() == ReplicaState::kFaulted) continue;
    Status st = r.dev->flush();
    if (st.ok()) {
      any = any || r.state.load() == ReplicaState::kOnline;
      continue;
    }
    last = r.name + ": " + st.error().message;
    fault(static_cast<uint32_t>(i), st.error().message);
  }
  if (!any)
    return makeError("nexus: flush reached no online replica" + (last.empty() ? "" : " (" + last + ")"), kBlockIo);
  return okStatus();
}

Status NexusImpl::mutateSync(uint64_t offset, uint64_t len,
                             const std::function<Status(BlockDevice&, uint64_t, uint64_t)>& fn) {
  if (Status v = validate(offset, len); !v.ok()) return v;
  uint64_t first = offset / options_.region_bytes, last = (offset + len - 1) / options_.region_bytes;
  while (!table_.enter(first, last)) std::this_thread::sleep_for(std::chrono::microseconds(200));
  int slot = static_cast<int>(epoch_.load() & 1);
  epoch_inflight_[slot].fetch_add(1);
  uint32_t ok = 0, refused = 0;
  std::string last_err;
  std::optional<Error> request;
  for (size_t i = 0; i < replicas_.size(); ++i) {
    Replica& r = *replicas_[i];
    if (r.state.load() == ReplicaState::kFaulted) continue;
    Status st = fn(*r.dev, offset, len);
    if (st.ok()) {
      ok |= 1u << i;
      continue;
    }
    last_err = r.name + ": " + st.error().message;
    if (requestError(st)) {
      refused |= 1u << i;
      if (!request) request = st.error();
      continue;
    }
    fault(static_cast<uint32_t>(i), st.error().message);
  }
  // Refused everywhere: the request's error, nobody faulted. Refused by
  // some, taken by others: those diverged and are faulted.
  if (ok != 0) {
    for (uint32_t i = 0; i < replicas_.size(); ++i) {
      if (refused >> i & 1) fault(i, "refused what another replica took");
    }
  }
  bool durable = ok == 0 || markMissed(~ok, first, last);
  table_.exit(first, last);
  epoch_inflight_[slot].fetch_sub(1);
  if (ok == 0 && request) return *request;
  if (ok == 0)
    return makeError("nexus: " + std::string(kIoError) + (last_err.empty() ? "" : " (" + last_err + ")"), kBlockIo);
  if (!durable) {
    Status st = saveRecord();
    if (!st.ok()) return makeError(st.error().message, kBlockIo);
  }
  return okStatus();
}

Status NexusImpl::discard(uint64_t offset, uint64_t len) {
  return mutateSync(offset, len, [](BlockDevice& d, uint64_t o, uint64_t n) { return d.discard(o, n); });
}

Status NexusImpl::writeZeroes(uint64_t offset, uint64_t len) {
  return mutateSync(offset, len, [](BlockDevice& d, uint64_t o, uint64_t n) { return d.writeZeroes(o, n); });
}

std::optional<uint64_t> NexusImpl::allocatedBytes() const {
  for (auto& r : replicas_) {
    if (r->state.load() == ReplicaState::kOnline) return r->dev->allocatedBytes();
  }
  return std::nullopt;
}

Status NexusImpl::validate(uint64_t offset, uint64_t len) const {
  if (len == 0 || offset % block_size_ || len % block_size_) {
    return makeError("nexus: I/O not aligned to " + std::to_string(block_size_) + " bytes", kBlockInvalid);
  }
  if (offset > size_ || len > size_ - offset) return makeError("nexus: I/O beyond the volume", kBlockOutOfRange);
  return okStatus();
}

// --- status ---------------------------------------------------------------

NexusStatus NexusImpl::status() const {
  NexusStatus s;
  s.generation = generation_.load();
  s.region_bytes = options_.region_bytes;
  size_t online = 0;
  for (auto& r : replicas_) {
    ReplicaStatus rs;
    rs.name = r->name;
    rs.state = r->state.load();
    online += rs.state == ReplicaState::kOnline;
    uint64_t bits = 0;
    for (uint64_t w = 0; w < words_; ++w) bits += static_cast<uint64_t>(std::popcount(r->missed[w].load()));
    rs.missed_bytes = std::min(size_, bits * options_.region_bytes);
    rs.rebuild_total_bytes = r->rebuild_total.load();
    rs.rebuild_done_bytes = r->rebuild_done.load();
    rs.reads = r->reads.load();
    rs.writes = r->writes.load();
    rs.errors = r->errors.load();
    rs.inflight = r->inflight.load();
    {
      std::lock_guard<std::mutex> l(r->err_mu);
      rs.last_error = r->last_error;
    }
    s.replicas.push_back(std::move(rs));
  }
  s.state = online == replicas_.size() ? "online" : online > 0 ? "degraded" : "faulted";
  return s;
}

Result<std::unique_ptr<Nexus>> openNexus(std::vector<ReplicaDevice> replicas, std::shared_ptr<NexusJournal> journal,
                                         const NexusOptions& options) {
  if (replicas.empty() || replicas.size() > kMaxReplicas) {
    return makeError("nexus: 1 to " + std::to_string(kMaxReplicas) + " replicas, not " +
                     std::to_string(replicas.size()));
  }
  const uint64_t size = replicas[0].device->sizeBytes();
  const uint32_t bs = replicas[0].device->blockSize();
  for (size_t i = 0; i < replicas.size(); ++i) {
    const auto& r = replicas[i];
    if (r.name.empty()) return makeError("nexus: replica " + std::to_string(i) + " has no name");
    for (size_t j = 0; j < i; ++j) {
      if (replicas[j].name == r.name) return makeError("nexus: replica " + r.name + " is named twice");
    }
    if (r.device->sizeBytes() != size || r.device->blockSize() != bs) {
      return makeError("nexus: replica " + r.name + " is " + std::to_string(r.device->sizeBytes()) + " bytes in " +
                       std::to_string(r.device->blockSize()) + "-byte blocks, " + replicas[0].name + " " +
                       std::to_string(size) + " in " + std::to_string(bs) + ": replicas must match");
    }
  }
  NexusOptions o = options;
  OC_ASSIGN_OR_RETURN(auto record, journal->load());
  // The record's region size wins: its bitmaps are in those units.
  if (record) {
    if (record->size_bytes != size) {
      return makeError("nexus: the journal is for a " + std::to_string(record->size_bytes) +
                       "-byte volume, the replicas are " + std::to_string(size) +
                       " bytes (resize them together, or remove the journal of a volume made anew)");
    }
    o.region_bytes = record->region_bytes;
  }
  if (o.region_bytes < bs || (o.region_bytes & (o.region_bytes - 1)) != 0) {
    return makeError("nexus: region size " + std::to_string(o.region_bytes) +
                     " must be a power of two >= the block size");
  }
  auto nx = std::make_unique<NexusImpl>(std::move(replicas), std::move(journal), o, size, bs);
  OC_TRY(nx->start(record));
  return std::unique_ptr<Nexus>(std::move(nx));
}

}  // namespace offcore::nexus
