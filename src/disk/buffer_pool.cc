#include "disk/buffer_pool.h"

#include <algorithm>
#include <bit>

namespace offcore {
namespace {

int classOf(size_t capacity) { return std::countr_zero(capacity); }

}  // namespace

BufferPool::Buffer BufferPool::take(size_t size) {
  size_t capacity = std::bit_ceil(std::max<size_t>(size, 4096));
  int c = classOf(capacity);
  if (c < kClasses) {
    std::lock_guard<std::mutex> lock(mu_);
    auto& list = free_[c];
    if (!list.empty()) {
      Buffer b{list.back().release(), capacity};
      list.pop_back();
      free_bytes_ -= capacity;
      return b;
    }
  }
  return Buffer{new char[capacity], capacity};  // not value-initialised: no zero fill
}

void BufferPool::give(Buffer buffer) {
  if (buffer.data == nullptr) return;
  std::unique_ptr<char[]> owned(buffer.data);
  int c = classOf(buffer.capacity);
  if (c >= kClasses) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (free_bytes_ + buffer.capacity > keep_bytes_) return;
  free_bytes_ += buffer.capacity;
  free_[c].push_back(std::move(owned));
}

size_t BufferPool::freeBytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return free_bytes_;
}

}  // namespace offcore
