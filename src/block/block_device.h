// BlockDevice: the plug-in interface every block back end implements (a
// volume in the store, an NVMe/TCP namespace seen through the initiator, a
// plain file). Like an SPDK bdev's ops table, kept small on purpose.
//
// Offsets and lengths are in bytes and must be multiples of blockSize().
// The plain calls are synchronous and may block on disk or network I/O;
// callers on an event loop hand them to a worker (docs/CONCURRENCY.md).
// readAsync/writeAsync start a request and return; its IoCompletion runs
// once, on whatever thread finished it (inline on the caller's thread for a
// device without an asynchronous path, which is the default). A device with
// one (the NVMe/TCP initiator) lets one thread keep many requests in flight
// instead of parking a thread per request. Implementations are safe to call
// from several threads at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "base/result.h"

namespace offcore {

// The end of an asynchronous request. done() is called exactly once; the
// request's buffer belongs to the device until then, and the completion may
// delete itself inside done().
class IoCompletion {
 public:
  virtual void done(Status status) = 0;

 protected:
  ~IoCompletion() = default;
};

class BlockDevice {
 public:
  virtual ~BlockDevice() = default;

  virtual uint64_t sizeBytes() const = 0;
  virtual uint32_t blockSize() const = 0;

  virtual Status read(uint64_t offset, void* buf, size_t len) = 0;
  // Acknowledged writes survive a crash of this process; power-loss
  // durability needs flush(), as with a volatile write cache.
  virtual Status write(uint64_t offset, const void* buf, size_t len) = 0;
  virtual Status flush() = 0;
  // Deallocate: later reads of the range return zeroes.
  virtual Status discard(uint64_t offset, uint64_t len) = 0;
  virtual Status writeZeroes(uint64_t offset, uint64_t len) = 0;
  // The asynchronous forms of read and write (see above). Never throw and
  // never drop a completion: a request that cannot start completes with its
  // error.
  virtual void readAsync(uint64_t offset, void* buf, size_t len, IoCompletion* done) {
    done->done(read(offset, buf, len));
  }
  virtual void writeAsync(uint64_t offset, const void* buf, size_t len, IoCompletion* done) {
    done->done(write(offset, buf, len));
  }
  // Completion polling (optional). A device that returns an fd here
  // completes asynchronous requests only when its owner calls
  // reapCompletions(), on the one thread that also submits them (which must
  // therefore never wait for a completion itself: synchronous calls belong
  // on other threads). The fd is readable when there may be something to
  // reap. -1, the default: the device completes on threads of its own.
  virtual int completionFd() { return -1; }
  virtual void reapCompletions() {}
  // Plugging (optional, as the kernel's block layer plugs): between plug()
  // and unplug() the device may hold what is submitted and start it all at
  // unplug(), e.g. one send for many commands. The completion poller plugs
  // around its turn and never waits in between; unplug() waits only as the
  // sends it makes would have. No-ops by default.
  virtual void plug() {}
  virtual void unplug() {}
  // Bytes backed by storage now (a thin device's allocation; NVMe reports it
  // as NUSE). nullopt: the device cannot tell, and counts as fully allocated.
  // Cheap: called on every Identify Namespace.
  virtual std::optional<uint64_t> allocatedBytes() const { return std::nullopt; }
};

// Error codes a BlockDevice returns in Error::code, so transports can map
// them to protocol statuses (NVMe: LBA out of range, capacity exceeded...).
enum BlockErrno : int {
  kBlockOutOfRange = 34,  // ERANGE: beyond the device's size
  kBlockNoSpace = 28,     // ENOSPC: the thin pool is full
  kBlockReadOnly = 30,    // EROFS: a snapshot
  kBlockIo = 5,           // EIO: media or peer failure
  kBlockInvalid = 22,     // EINVAL: misaligned or malformed request
  kBlockTimedOut = 110,   // ETIMEDOUT: the back end did not answer in time
};

}  // namespace offcore
