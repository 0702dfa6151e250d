// The nexus's rebuild thread: probes faulted replicas and copies the
// regions they missed from an online one while I/O continues.
#include <algorithm>
#include <bit>
#include <chrono>
#include <cstdlib>

#include "base/log.h"
#include "nexus/nexus_impl.h"

namespace offcore::nexus {

namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kCopyDepth = 4;  // regions copied at once

struct AlignedFree {
  void operator()(void* p) const { std::free(p); }
};

}  // namespace

Status NexusImpl::rebuild(const std::string& replica) {
  for (auto& r : replicas_) {
    if (r->name != replica) continue;
    if (r->state.load() == ReplicaState::kOnline)
      return makeError("replica " + replica + " is online: nothing to rebuild");
    r->rebuild_requested = true;
    rebuild_cv_.notify_all();
    return okStatus();
  }
  return makeError("nexus has no replica " + replica);
}

bool NexusImpl::waitIdle(int timeout_ms) {
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    bool all = std::all_of(replicas_.begin(), replicas_.end(),
                           [](const auto& r) { return r->state.load() == ReplicaState::kOnline; });
    if (all) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

// Every write counts itself in the epoch (parity) it read when it started.
// Flipping the epoch and waiting for the old parity's count to reach zero
// means every write that started before the flip has finished, and so has
// marked what it missed (writes mark before they leave).
void NexusImpl::waitEpochDrained() {
  uint64_t old = epoch_.fetch_add(1);
  while (epoch_inflight_[old & 1].load() != 0) std::this_thread::sleep_for(std::chrono::microseconds(50));
}

bool NexusImpl::probe(Replica& r) {
  void* p = nullptr;
  if (::posix_memalign(&p, 4096, block_size_) != 0) return false;
  std::unique_ptr<void, AlignedFree> buf(p);
  return r.dev->read(0, buf.get(), block_size_).ok();
}

void NexusImpl::rebuildLoop() {
  struct Exited {
    std::atomic<bool>& flag;
    ~Exited() { flag = true; }
  } exited{rebuild_exited_};
  const auto interval = std::chrono::milliseconds(options_.probe_interval_ms ? options_.probe_interval_ms : 1000);
  for (;;) {
    {
      std::unique_lock<std::mutex> l(rebuild_mu_);
      rebuild_cv_.wait_for(l, interval, [&] {
        if (stop_) return true;
        return std::any_of(replicas_.begin(), replicas_.end(),
                           [](const auto& r) { return r->rebuild_requested.load(); });
      });
      if (stop_) return;
    }
    for (uint32_t i = 0; i < replicas_.size(); ++i) {
      Replica& r = *replicas_[i];
      bool asked = r.rebuild_requested.exchange(false);
      if (r.state.load() != ReplicaState::kFaulted) continue;
      if (!asked && options_.probe_interval_ms == 0) continue;
      if (!probe(r)) continue;
      runRebuild(i);
      std::lock_guard<std::mutex> l(rebuild_mu_);
      if (stop_) return;
    }
  }
}

void RegionCopy::done(Status status) { nx->copyDone(this, std::move(status)); }

// A copy's read or write completed (on the thread reaping the replicas).
void NexusImpl::copyDone(RegionCopy* c, Status status) {
  if (!c->writing) {
    replicas_[static_cast<size_t>(c->src)]->inflight.fetch_sub(1, std::memory_order_relaxed);
    if (status.ok()) {
      c->writing = true;
      replicas_[c->dst]->dev->writeAsync(c->off, c->buf, c->len, c);
      return;
    }
    // The source failed: the region stays missed, and the next pass takes
    // it from another online replica.
    fault(static_cast<uint32_t>(c->src), status.error().message);
    return finishCopy(c, false, "");
  }
  if (!status.ok()) return finishCopy(c, false, "write to " + replicas_[c->dst]->name + ": " + status.error().message);
  replicas_[c->dst]->missed[c->region / 64].fetch_and(~(uint64_t{1} << (c->region % 64)));
  finishCopy(c, true, "");
}

void NexusImpl::finishCopy(RegionCopy* c, bool copied, const std::string& error) {
  table_.unlock(c->region);
  releaseParked();
  std::lock_guard<std::mutex> l(copy_mu_);
  if (copied) copy_bytes_ += c->len;
  if (!error.empty() && copy_error_.empty()) copy_error_ = error;
  copy_free_.push_back(c);
  copy_cv_.notify_all();
}

void NexusImpl::runRebuild(uint32_t idx) {
  Replica& r = *replicas_[idx];
  ReplicaState expected = ReplicaState::kFaulted;
  if (!r.state.compare_exchange_strong(expected, ReplicaState::kRebuilding)) return;
  generation_.fetch_add(1);
  // From here every new write goes to this replica too; the writes that
  // started before are waited for, so none can mark a region missed after
  // the copy below took it.
  waitEpochDrained();
  if (Status st = saveRecord(); !st.ok()) spdlog::warn("{}", st.error().message);
  uint64_t bits = 0;
  for (uint64_t w = 0; w < words_; ++w) bits += static_cast<uint64_t>(std::popcount(r.missed[w].load()));
  r.rebuild_total = std::min(size_, bits * options_.region_bytes);
  r.rebuild_done = 0;
  spdlog::info("nexus: rebuilding replica {}: {} MiB to copy", r.name, r.rebuild_total.load() >> 20);
  auto stopRebuild = [&](const std::string& why) {
    fault(idx, "rebuild stopped: " + why);
    r.rebuild_total = 0;
  };
  // Up to kCopyDepth regions are copied at once (a read from an online
  // replica, then the write to this one), each under its region lock.
  std::vector<std::unique_ptr<void, AlignedFree>> bufs;
  std::vector<RegionCopy> copies(kCopyDepth);
  {
    std::lock_guard<std::mutex> l(copy_mu_);
    copy_free_.clear();
    copy_bytes_ = 0;
    copy_error_.clear();
  }
  for (auto& c : copies) {
    void* p = nullptr;
    if (::posix_memalign(&p, 4096, options_.region_bytes) != 0) {
      fault(idx, "rebuild: out of memory");
      return;
    }
    bufs.emplace_back(p);
    c.nx = this;
    c.dst = idx;
    c.buf = p;
    std::lock_guard<std::mutex> l(copy_mu_);
    copy_free_.push_back(&c);
  }
  const auto t0 = Clock::now();
  const double rate = options_.rebuild_mib_per_s * 1048576.0;
  uint64_t issued = 0;
  std::string why;
  auto drain = [&] {
    std::unique_lock<std::mutex> l(copy_mu_);
    copy_cv_.wait(l, [&] { return copy_free_.size() == copies.size(); });
    if (why.empty()) why = copy_error_;
  };
  for (bool again = true; again && why.empty();) {
    again = false;
    for (uint64_t region = 0; region < regions_ && why.empty(); ++region) {
      if (!(r.missed[region / 64].load() >> (region % 64) & 1)) continue;
      again = true;
      {
        std::lock_guard<std::mutex> l(rebuild_mu_);
        if (stop_) why = "the nexus is stopping";
      }
      if (why.empty() && r.state.load() != ReplicaState::kRebuilding) why = "the replica failed a write";
      RegionCopy* c = nullptr;
      if (why.empty()) {
        std::unique_lock<std::mutex> l(copy_mu_);
        copy_cv_.wait(l, [&] { return !copy_free_.empty(); });
        if (!copy_error_.empty()) {
          why = copy_error_;
        } else {
          c = copy_free_.back();
          copy_free_.pop_back();
        }
      }
      if (!c) break;
      // Hold new writes to the region back and let those in it finish.
      table_.lock(region);
      while (table_.inflight(region) != 0) std::this_thread::sleep_for(std::chrono::microseconds(20));
      int src = pickReadReplica(1u << idx);
      if (src < 0) {
        table_.unlock(region);
        releaseParked();
        std::lock_guard<std::mutex> l(copy_mu_);
        copy_free_.push_back(c);
        why = "no online replica to copy from";
        break;
      }
      c->src = src;
      c->region = region;
      c->off = region * options_.region_bytes;
      c->len = static_cast<size_t>(std::min<uint64_t>(options_.region_bytes, size_ - c->off));
      c->writing = false;
      replicas_[static_cast<size_t>(src)]->inflight.fetch_add(1, std::memory_order_relaxed);
      replicas_[static_cast<size_t>(src)]->dev->readAsync(c->off, c->buf, c->len, c);
      issued += c->len;
      {
        std::lock_guard<std::mutex> l(copy_mu_);
        r.rebuild_done = copy_bytes_;
      }
      // The bandwidth bound: sleep off what was started ahead of the rate.
      if (rate > 0) {
        auto due = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(issued / rate));
        if (due > Clock::now()) std::this_thread::sleep_until(due);
      }
    }
    // A pass ends with nothing in flight, so the next one sees settled bits.
    drain();
  }
  uint64_t copied;
  {
    std::lock_guard<std::mutex> l(copy_mu_);
    copied = copy_bytes_;
  }
  r.rebuild_done = copied;
  if (!why.empty()) return stopRebuild(why);
  if (Status st = r.dev->flush(); !st.ok()) return stopRebuild("flush: " + st.error().message);
  expected = ReplicaState::kRebuilding;
  if (!r.state.compare_exchange_strong(expected, ReplicaState::kOnline))
    return stopRebuild("the replica failed a write");
  generation_.fetch_add(1);
  {
    std::lock_guard<std::mutex> l(r.err_mu);
    r.last_error.clear();
  }
  if (Status st = saveRecord(); !st.ok()) spdlog::warn("{}", st.error().message);
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  spdlog::info("nexus: replica {} rebuilt: {} MiB in {:.2f} s; back online", r.name, copied >> 20, secs);
  r.rebuild_total = 0;
}

}  // namespace offcore::nexus
