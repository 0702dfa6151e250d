// IoBuffer: the data of one read command, from the store straight into the
// C2HData PDUs that carry it (connection.cc sends it by reference, no copy).
// Buffers come from a per-thread pool: a poll group reuses the same few, so a
// read costs no malloc, no zero fill and no page faults. Uninitialised on
// purpose: the store fills every byte the command returns.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace offcore::nvme {

struct IoBuffer {
  std::unique_ptr<uint8_t[]> bytes;
  size_t capacity = 0;
  size_t size = 0;  // the bytes the command returns
  uint8_t* data() { return bytes.get(); }
  const uint8_t* data() const { return bytes.get(); }
};

// A buffer of `size` bytes from this thread's pool. It goes back to the pool
// of the thread that drops the last reference (a poll group: its own). The
// pool keeps at most kPoolBytes per thread; larger or surplus buffers are
// freed.
std::shared_ptr<IoBuffer> acquireIoBuffer(size_t size);

inline constexpr size_t kIoPoolBytes = 8u << 20;

// The bytes this thread's pool holds now (for `target` stats and tests).
size_t ioPoolBytes();

}  // namespace offcore::nvme
