#include "image/lazy/lazy_device.h"

#include <cstring>

#include "base/log.h"

namespace offcore {

struct LazyDevice::Inflight {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  Status status;
  std::string data;
};

LazyDevice::LazyDevice(std::unique_ptr<ChunkSource> source, std::shared_ptr<ChunkCache> cache, std::string cache_key)
    : source_(std::move(source)), cache_(std::move(cache)), key_(std::move(cache_key)) {
  touched_.assign(source_->chunkCount(), false);
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

Status LazyDevice::chunk(uint64_t index, std::string& out) {
  // A cached chunk of the wrong length (a torn file after a crash) is a miss.
  if (cache_->get(key_, index, out) && out.size() == chunkLength(index)) {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.chunk_hits;
    return {};
  }
  std::shared_ptr<Inflight> f;
  bool leader = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = inflight_.find(index);
    if (it == inflight_.end()) {
      f = std::make_shared<Inflight>();
      inflight_[index] = f;
      leader = true;
    } else {
      f = it->second;
      ++stats_.coalesced;
    }
  }
  if (!leader) {
    std::unique_lock<std::mutex> lock(f->mu);
    f->cv.wait(lock, [&] { return f->done; });
    if (!f->status.ok()) return f->status;
    out = f->data;
    return {};
  }
  std::string data;
  Status s = source_->fetch(index, data);
  if (s.ok()) cache_->put(key_, index, data);
  {
    std::lock_guard<std::mutex> lock(mu_);
    inflight_.erase(index);
    if (s.ok())
      ++stats_.chunk_fetches;
    else
      ++stats_.fetch_errors;
    stats_.bytes_fetched = source_->bytesFetched();
  }
  {
    std::lock_guard<std::mutex> lock(f->mu);
    f->done = true;
    f->status = s;
    if (s.ok()) f->data = data;
  }
  f->cv.notify_all();
  if (!s.ok()) return s;
  out = std::move(data);
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
        OC_TRY(chunk(index, data));
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
  prefetcher_ = std::thread([this, first = std::move(first), fill] {
    std::vector<bool> done(source_->chunkCount(), false);
    std::string data;
    auto one = [&](uint64_t c) {
      if (c >= done.size() || done[c]) return;
      done[c] = true;
      if (chunk(c, data).ok()) {
        std::lock_guard<std::mutex> lock(mu_);
        ++stats_.prefetched;
      }
    };
    for (uint32_t c : first) {
      if (stop_) return;
      one(c);
    }
    if (!fill) return;
    for (uint64_t c = 0; c < done.size() && !stop_; ++c) one(c);
  });
}

void LazyDevice::stopPrefetch() {
  stop_ = true;
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
