// GuestMemory: the front end's RAM as the back end sees it (SET_MEM_TABLE).
//
// Every address a guest or front end hands us goes through here, and every
// lookup is bounds-checked: a range must lie whole inside one region and
// must not wrap, or the lookup fails. Nothing else in src/virt turns a guest
// address into a pointer. A table is immutable once mapped; a new
// SET_MEM_TABLE builds a new one (queues are stopped while it is swapped,
// docs/CONCURRENCY.md "vhost-user").
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"

namespace offcore::virt {

// One region as VHOST_USER_SET_MEM_TABLE describes it.
struct MemoryRegionDesc {
  uint64_t guestPhysAddr = 0;
  uint64_t size = 0;
  uint64_t userAddr = 0;    // the front end's virtual address of the region
  uint64_t mmapOffset = 0;  // where the region starts in fd
  int fd = -1;              // owned by the caller until map() succeeds or fails
};

// At most this many regions per table (QEMU's VHOST_MEMORY_BASELINE_NREGIONS).
inline constexpr size_t kMaxMemoryRegions = 8;

class GuestMemory {
 public:
  virtual ~GuestMemory() = default;

  // Maps every region (MAP_SHARED, offset mmapOffset). Always closes the fds,
  // on success and on failure. Fails on overlapping or zero-sized regions,
  // more than kMaxMemoryRegions, or address arithmetic that wraps.
  static Result<std::unique_ptr<GuestMemory>> map(std::vector<MemoryRegionDesc> regions);

  // [gpa, gpa + len) as a host pointer, or an error if any byte of it lies
  // outside one region. len 0 is valid only at a mapped address.
  virtual Result<uint8_t*> gpaToHost(uint64_t gpa, uint64_t len) const = 0;
  // The same for a front-end virtual address (vring addresses, SET_VRING_ADDR).
  virtual Result<uint8_t*> uvaToHost(uint64_t uva, uint64_t len) const = 0;
  // The guest-physical address of a front-end virtual address (for logging
  // used-ring writes when the ring was given by user address).
  virtual Result<uint64_t> uvaToGpa(uint64_t uva) const = 0;

  virtual size_t regionCount() const = 0;
  virtual uint64_t totalBytes() const = 0;
};

// A front end's area (the dirty log, the inflight area) mapped MAP_SHARED:
// `data` is `size` bytes at `offset` of the fd; munmap(map, mapLen) frees
// it.
struct SharedArea {
  void* map = nullptr;
  size_t mapLen = 0;
  uint8_t* data = nullptr;
};

// Maps it after checking it lies inside its file and is sealed against
// shrinking (either would SIGBUS this process later). Always closes fd.
// `what` names the area, `request` the message that sent it, in errors.
Result<SharedArea> mapFrontEndArea(int fd, uint64_t size, uint64_t offset, const std::string& what,
                                   const std::string& request);

// A memfd shared with the front end must carry F_SEAL_SHRINK: shrinking it
// under a mapping would kill this process with SIGBUS on the next access.
// QEMU seals its memfds (memory-backend-memfd seal=on, the vhost log and
// inflight areas) by default. Files that cannot be sealed (hugetlbfs,
// /dev/shm files) are accepted: their owner is trusted not to truncate them
// (docs/VM.md). `what` names the area in the error.
Status requireShrinkSealed(int fd, const std::string& what);

}  // namespace offcore::virt
