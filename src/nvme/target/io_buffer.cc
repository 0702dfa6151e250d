#include "nvme/target/io_buffer.h"

#include <algorithm>
#include <bit>
#include <vector>

namespace offcore::nvme {

namespace {

struct Pool {
  std::vector<std::unique_ptr<uint8_t[]>> free[32];  // by log2(capacity)
  size_t bytes = 0;                                  // held in `free`
};

Pool& localPool() {
  thread_local Pool pool;
  return pool;
}

size_t classOf(size_t capacity) { return static_cast<size_t>(std::countr_zero(capacity)); }

}  // namespace

std::shared_ptr<IoBuffer> acquireIoBuffer(size_t size) {
  size_t capacity = std::bit_ceil(std::max<size_t>(size, 4096));
  Pool& pool = localPool();
  auto* buf = new IoBuffer;
  auto& list = pool.free[classOf(capacity)];
  if (!list.empty()) {
    buf->bytes = std::move(list.back());
    list.pop_back();
    pool.bytes -= capacity;
  } else {
    buf->bytes.reset(new uint8_t[capacity]);  // not value-initialised: no zero fill
  }
  buf->capacity = capacity;
  buf->size = size;
  return std::shared_ptr<IoBuffer>(buf, [](IoBuffer* b) {
    Pool& p = localPool();
    if (b->bytes && p.bytes + b->capacity <= kIoPoolBytes) {
      p.bytes += b->capacity;
      p.free[classOf(b->capacity)].push_back(std::move(b->bytes));
    }
    delete b;
  });
}

size_t ioPoolBytes() { return localPool().bytes; }

}  // namespace offcore::nvme
