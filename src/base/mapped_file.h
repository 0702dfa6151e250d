// MappedReadView: a read-only shared mapping of a file, read by copying out
// of it. For files in memory (tmpfs), where a pread per block costs a system
// call and a page-cache lookup that a mapped copy does not.
//
// A fault in the mapping raises SIGBUS: the file was truncated under it, or
// tmpfs had no page to give a hole. copyOut catches that on the calling
// thread and returns false, and the caller reads the same bytes with pread,
// which never faults. The handler is installed once per process; a SIGBUS
// outside copyOut goes to the handler it replaced (by default, a core dump).
//
// Coherent with pwrite and fallocate on the same file (one page cache), so
// only for local file systems: see fileIsInMemory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "base/result.h"

namespace offcore {

class MappedReadView {
 public:
  // Maps `bytes` of fd from offset 0 (the file may be shorter and grow into
  // it; only address space is reserved). Fails if the kernel refuses.
  static Result<std::unique_ptr<MappedReadView>> map(int fd, uint64_t bytes);
  ~MappedReadView();
  MappedReadView(const MappedReadView&) = delete;
  MappedReadView& operator=(const MappedReadView&) = delete;

  uint64_t bytes() const { return bytes_; }
  // Copies [offset, offset + n) into dst. False, with dst's content
  // unspecified, when the range is outside the view or a page faulted.
  // Thread-safe.
  bool copyOut(void* dst, uint64_t offset, size_t n) const;

 private:
  MappedReadView(const char* base, uint64_t bytes) : base_(base), bytes_(bytes) {}
  const char* base_;
  uint64_t bytes_;
};

// True when fd's file lives in memory (tmpfs, ramfs, a memfd): reading it
// never waits for a device, so a mapped copy cannot stall a poll group.
bool fileIsInMemory(int fd);

}  // namespace offcore
