#include "image/lazy/chunk_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <vector>

#include "base/files.h"
#include "base/log.h"

namespace offcore {

ChunkCache::ChunkCache(std::string dir, uint64_t limit_bytes) : dir_(std::move(dir)), limit_(limit_bytes) {
  stats_.limit_bytes = limit_;
}

std::string ChunkCache::pathOf(const std::string& key, uint64_t chunk) const {
  return dir_ + "/" + key + "/" + std::to_string(chunk);
}

Status ChunkCache::init() {
  OC_TRY(makePrivateDir(dir_));
  struct Found {
    std::string name;
    uint64_t bytes;
    int64_t mtime;
  };
  std::vector<Found> found;
  std::error_code ec;
  for (const auto& layer : std::filesystem::directory_iterator(dir_, ec)) {
    if (!layer.is_directory()) continue;
    for (const auto& f : std::filesystem::directory_iterator(layer.path(), ec)) {
      struct stat st {};
      if (::stat(f.path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
      if (f.path().filename().string().find('.') != std::string::npos) {  // a torn write
        ::unlink(f.path().c_str());
        continue;
      }
      found.push_back({layer.path().filename().string() + "/" + f.path().filename().string(),
                       static_cast<uint64_t>(st.st_size), st.st_mtim.tv_sec});
    }
  }
  std::sort(found.begin(), found.end(), [](const Found& a, const Found& b) { return a.mtime > b.mtime; });
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& f : found) {
    lru_.push_back(f.name);
    entries_[f.name] = Entry{f.bytes, std::prev(lru_.end())};
    stats_.bytes += f.bytes;
  }
  stats_.entries = entries_.size();
  evictLocked();
  return {};
}

bool ChunkCache::get(const std::string& key, uint64_t chunk, std::string& out) {
  std::string name = key + "/" + std::to_string(chunk);
  uint64_t bytes = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(name);
    if (it == entries_.end()) {
      ++stats_.misses;
      return false;
    }
    lru_.splice(lru_.begin(), lru_, it->second.lru);
    bytes = it->second.bytes;
  }
  int fd = ::open((dir_ + "/" + name).c_str(), O_RDONLY | O_CLOEXEC);
  bool ok = fd >= 0;
  if (ok) {
    out.resize(bytes);
    ok = ::pread(fd, out.data(), bytes, 0) == static_cast<ssize_t>(bytes);
    ::close(fd);
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (!ok) {  // evicted meanwhile, or the file was damaged: a miss
    ++stats_.misses;
    return false;
  }
  ++stats_.hits;
  return true;
}

bool ChunkCache::read(const std::string& key, uint64_t chunk, uint64_t offset, size_t len, void* dst,
                      uint64_t expected_size) {
  std::string name = key + "/" + std::to_string(chunk);
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(name);
    if (it == entries_.end() || it->second.bytes != expected_size || offset + len > expected_size) {
      ++stats_.misses;
      return false;
    }
    lru_.splice(lru_.begin(), lru_, it->second.lru);
  }
  int fd = ::open((dir_ + "/" + name).c_str(), O_RDONLY | O_CLOEXEC);
  bool ok = fd >= 0 && ::pread(fd, dst, len, static_cast<off_t>(offset)) == static_cast<ssize_t>(len);
  if (fd >= 0) ::close(fd);
  std::lock_guard<std::mutex> lock(mu_);
  ++(ok ? stats_.hits : stats_.misses);
  return ok;
}

void ChunkCache::put(const std::string& key, uint64_t chunk, const std::string& data) {
  if (data.size() > limit_) return;
  std::string name = key + "/" + std::to_string(chunk);
  std::string path = dir_ + "/" + name;
  std::string tmp = path + ".tmp" + std::to_string(::gettid());
  (void)makeDirs(dir_ + "/" + key, 0700);  // a failure shows as the open below failing
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return;  // a full cache disk only costs refetches
  bool ok = ::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return;
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = entries_.find(name); it != entries_.end()) {
    stats_.bytes -= it->second.bytes;
    lru_.erase(it->second.lru);
    entries_.erase(it);
  }
  lru_.push_front(name);
  entries_[name] = Entry{data.size(), lru_.begin()};
  stats_.bytes += data.size();
  ++stats_.insertions;
  evictLocked();
  stats_.entries = entries_.size();
}

void ChunkCache::evictLocked() {
  while (stats_.bytes > limit_ && !lru_.empty()) {
    std::string victim = lru_.back();
    lru_.pop_back();
    auto it = entries_.find(victim);
    if (it != entries_.end()) {
      stats_.bytes -= it->second.bytes;
      entries_.erase(it);
    }
    ::unlink((dir_ + "/" + victim).c_str());
    ++stats_.evictions;
  }
  stats_.entries = entries_.size();
}

void ChunkCache::dropLayer(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->first.rfind(key + "/", 0) == 0) {
      stats_.bytes -= it->second.bytes;
      lru_.erase(it->second.lru);
      ::unlink((dir_ + "/" + it->first).c_str());
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
  stats_.entries = entries_.size();
}

ChunkCacheStats ChunkCache::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace offcore
