#include "image/lazy/lazy_device.h"

#include <algorithm>
#include <cstring>

#include "base/log.h"

namespace offcore {

namespace {
// The status waiters of a chunk get when the run it was part of failed as a
// whole: not the chunk's own verdict, so they fetch it again alone.
constexpr int kRunFailed = -1001;
}  // namespace

struct LazyDevice::Inflight {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  Status status;
  std::string data;
};

LazyDevice::LazyDevice(std::unique_ptr<ChunkSource> source, std::shared_ptr<ChunkCache> cache, std::string cache_key,
                       LazyDeviceOptions options)
    : source_(std::move(source)), cache_(std::move(cache)), key_(std::move(cache_key)), options_(options) {
  touched_.assign(source_->chunkCount(), false);
  present_.assign(source_->chunkCount(), false);
}

LazyDevice::~LazyDevice() { stopPrefetch(); }

uint64_t LazyDevice::sizeBytes() const { return (source_->rawSize() + 4095) / 4096 * 4096; }

uint64_t LazyDevice::chunkLength(uint64_t index) const {
  const uint64_t cs = source_->chunkSize(), raw = source_->rawSize();
  return std::min<uint64_t>(cs, raw - std::min(raw, index * cs));
}

void LazyDevice::touch(uint64_t index) {
  std::lock_guard<std::mutex> lock(mu_);
  if (index < touched_.size() && !touched_[index]) {
    touched_[index] = true;
    trace_.push_back(static_cast<uint32_t>(index));
  }
}

Status LazyDevice::chunk(uint64_t index, std::string& out, bool demand) {
  // A cached chunk of the wrong length (a torn file after a crash) is a miss.
  if (cache_->get(key_, index, out) && out.size() == chunkLength(index)) {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.chunk_hits;
    present_[index] = true;
    return {};
  }
  uint64_t want = 1;
  if (demand && options_.readahead_max_bytes > 0) {
    std::lock_guard<std::mutex> lock(mu_);
    const uint64_t max = std::max<uint64_t>(1, options_.readahead_max_bytes / source_->chunkSize());
    // Sequential: a reader already had the chunk before this one. One
    // stream per layer is assumed; a random miss starts over at one chunk.
    bool sequential = index > 0 && touched_[index - 1];
    ra_window_ = sequential ? std::min(max, std::max<uint64_t>(2, ra_window_ * 2)) : 1;
    want = ra_window_;
  }
  if (!demand) return fetchRun(index, want, out, false, nullptr);
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++demand_;
  }
  Status s = fetchRun(index, want, out, true, nullptr);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (--demand_ == 0) turn_.notify_all();
  }
  return s;
}

bool LazyDevice::waitTurn(uint64_t bytes, bool paced) {
  std::unique_lock<std::mutex> lock(mu_);
  if (paced && options_.fill_bytes_per_sec > 0) {
    auto now = std::chrono::steady_clock::now();
    auto slot = std::max(now, pace_until_);
    pace_until_ = slot + std::chrono::microseconds(bytes * 1000000 / options_.fill_bytes_per_sec);
    turn_.wait_until(lock, slot, [&] { return stop_.load(); });
  }
  // Last, so a reader's miss that came during the pacing wait goes first too.
  if (demand_ > 0) {
    ++stats_.prefetch_yields;
    turn_.wait(lock, [&] { return demand_ == 0 || stop_; });
  }
  return !stop_;
}

Status LazyDevice::fetchRun(uint64_t index, uint64_t want, std::string& out, bool ahead, uint64_t* fetched) {
  if (fetched) *fetched = 0;
  std::vector<std::shared_ptr<Inflight>> run;
  std::shared_ptr<Inflight> follow;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = inflight_.find(index); it != inflight_.end()) {
      follow = it->second;
      ++stats_.coalesced;
    } else {
      const uint64_t count = source_->chunkCount();
      for (uint64_t c = index; c < count && run.size() < want; ++c) {
        if (c != index && (inflight_.count(c) || present_[c])) break;
        auto f = std::make_shared<Inflight>();
        inflight_[c] = f;
        run.push_back(std::move(f));
      }
    }
  }
  if (follow) {
    std::unique_lock<std::mutex> lock(follow->mu);
    follow->cv.wait(lock, [&] { return follow->done; });
    if (!follow->status.ok()) {
      // The run it rode on failed: fetched alone, the chunk may be fine.
      if (follow->status.error().code == kRunFailed) {
        lock.unlock();
        return fetchRun(index, 1, out, false, fetched);
      }
      return follow->status;
    }
    out = follow->data;
    return {};
  }
  std::vector<std::string> data;
  Status s = source_->fetchRun(index, run.size(), data);
  if (!s.ok() && run.size() > 1) {
    // One bad or unreachable chunk must not fail its neighbours: the chunk
    // asked for is fetched alone, the others' waiters retry on their own.
    std::string one;
    Status alone = source_->fetch(index, one);
    std::lock_guard<std::mutex> lock(mu_);
    ra_window_ = 1;
    ++stats_.range_requests;
    for (size_t i = 1; i < run.size(); ++i) {
      inflight_.erase(index + i);
      std::lock_guard<std::mutex> flock(run[i]->mu);
      run[i]->done = true;
      run[i]->status = makeError(s.error().message, kRunFailed);
      run[i]->cv.notify_all();
    }
    run.resize(1);
    data.resize(1);
    data[0] = std::move(one);
    s = alone;
  }
  if (s.ok()) {
    for (size_t i = 0; i < run.size(); ++i) cache_->put(key_, index + i, data[i]);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 0; i < run.size(); ++i) {
      inflight_.erase(index + i);
      if (s.ok()) present_[index + i] = true;
    }
    ++stats_.range_requests;
    if (s.ok()) {
      stats_.chunk_fetches += run.size();
      if (ahead) stats_.readahead_chunks += run.size() - 1;
    } else {
      ++stats_.fetch_errors;
    }
    stats_.bytes_fetched = source_->bytesFetched();
  }
  for (size_t i = 0; i < run.size(); ++i) {
    {
      std::lock_guard<std::mutex> lock(run[i]->mu);
      run[i]->done = true;
      run[i]->status = s;
      if (s.ok()) run[i]->data = data[i];
    }
    run[i]->cv.notify_all();
  }
  if (fetched) *fetched = s.ok() ? run.size() : 0;
  if (!s.ok()) return s;
  out = std::move(data[0]);
  return {};
}

Status LazyDevice::read(uint64_t offset, void* buf, size_t len) {
  if (offset + len > sizeBytes()) return makeError("read beyond the layer image", kBlockOutOfRange);
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.reads;
    stats_.read_bytes += len;
  }
  const uint64_t cs = source_->chunkSize();
  auto* dst = static_cast<uint8_t*>(buf);
  std::string data;
  while (len > 0) {
    uint64_t index = offset / cs, within = offset % cs;
    size_t n = static_cast<size_t>(std::min<uint64_t>(len, cs - within));
    if (offset >= source_->rawSize()) {  // the padding up to a whole block
      std::memset(dst, 0, n);
    } else {
      touch(index);
      const uint64_t length = chunkLength(index);
      size_t have = within < length ? static_cast<size_t>(std::min<uint64_t>(n, length - within)) : 0;
      if (have && cache_->read(key_, index, within, have, dst, length)) {
        std::lock_guard<std::mutex> lock(mu_);
        ++stats_.chunk_hits;
      } else if (have) {
        OC_TRY(chunk(index, data, true));
        std::memcpy(dst, data.data() + within, have);
      }
      if (have < n) std::memset(dst + have, 0, n - have);
    }
    dst += n;
    offset += n;
    len -= n;
  }
  return {};
}

void LazyDevice::startPrefetch(std::vector<uint32_t> first, bool fill) {
  stopPrefetch();
  stop_ = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    pace_until_ = {};
  }
  prefetcher_ = std::thread([this, first = std::move(first), fill] {
    const uint64_t count = source_->chunkCount();
    const uint64_t max_run_list = std::max<uint64_t>(1, options_.prefetch_run_bytes / source_->chunkSize());
    std::vector<bool> done(count, false);
    // Skips (and marks) what the cache holds from an earlier attach.
    auto wanted = [&](uint64_t c) {
      if (c >= count || done[c]) return false;
      done[c] = true;
      // Presence only: a zero-byte read checks the index, copies nothing.
      if (cache_->read(key_, c, 0, 0, nullptr, chunkLength(c))) {
        std::lock_guard<std::mutex> lock(mu_);
        present_[c] = true;
        return false;
      }
      return true;
    };
    // Adjacent entries of the list go as one run; runs go to a few workers
    // at once (the back end's latency, not its bandwidth, bounds one).
    auto runFrom = [&](const std::vector<uint64_t>& list, bool paced) {
      // Paced runs are at most a 16th of a second's worth: the bound holds
      // over short spans too, not only on average.
      uint64_t max_run = max_run_list;
      if (paced && options_.fill_bytes_per_sec > 0) {
        max_run = std::clamp<uint64_t>(options_.fill_bytes_per_sec / 16 / source_->chunkSize(), 1, max_run);
      }
      std::vector<std::pair<uint64_t, uint64_t>> runs;
      for (size_t i = 0; i < list.size() && !stop_;) {
        uint64_t c = list[i++];
        if (!wanted(c)) continue;
        uint64_t n = 1;
        while (i < list.size() && n < max_run && list[i] == c + n && wanted(list[i])) {
          ++n;
          ++i;
        }
        runs.emplace_back(c, n);
      }
      std::atomic<size_t> next{0};
      auto work = [&] {
        std::string buf;
        while (!stop_) {
          size_t k = next.fetch_add(1);
          if (k >= runs.size()) break;
          // fetchRun stops a run at a chunk in flight or already here (a
          // reader got there first); what is left of it goes next.
          uint64_t c = runs[k].first, left = runs[k].second;
          while (left > 0 && !stop_) {
            {
              std::lock_guard<std::mutex> lock(mu_);
              while (left > 0 && present_[c]) ++c, --left;
            }
            if (left == 0 || !waitTurn(left * source_->chunkSize(), paced)) break;
            uint64_t got = 0;
            Status st = fetchRun(c, left, buf, false, &got);
            {
              std::lock_guard<std::mutex> lock(mu_);
              stats_.prefetched += got;
              if (paced) stats_.filled += got;
            }
            if (!st.ok()) break;  // the back end failed it: the rest of this run waits for a reader
            const uint64_t step = std::max<uint64_t>(got, 1);  // 0: followed a fetch in flight
            c += std::min(step, left);
            left -= std::min(step, left);
          }
        }
      };
      std::vector<std::thread> workers;
      const size_t extra = std::min<size_t>(options_.prefetch_workers, runs.size());
      for (size_t w = 1; w < extra; ++w) workers.emplace_back(work);
      work();
      for (auto& t : workers) t.join();
    };
    runFrom(std::vector<uint64_t>(first.begin(), first.end()), false);
    if (!fill || stop_) return;
    std::vector<uint64_t> all(count);
    for (uint64_t c = 0; c < count; ++c) all[c] = c;
    runFrom(all, true);
  });
}

void LazyDevice::stopPrefetch() {
  {
    std::lock_guard<std::mutex> lock(mu_);  // a waiter between its check and its wait sees it
    stop_ = true;
  }
  turn_.notify_all();
  if (prefetcher_.joinable()) prefetcher_.join();
}

std::vector<uint32_t> LazyDevice::trace() const {
  std::lock_guard<std::mutex> lock(mu_);
  return trace_;
}

void LazyDevice::resetTrace() {
  std::lock_guard<std::mutex> lock(mu_);
  trace_.clear();
  touched_.assign(touched_.size(), false);
}

LazyDeviceStats LazyDevice::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  LazyDeviceStats s = stats_;
  s.bytes_fetched = source_->bytesFetched();
  return s;
}

}  // namespace offcore
