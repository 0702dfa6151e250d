// RegionTable: per region of a nexus, the writes in flight and whether a
// rebuild holds it. Writes enter the regions they touch without a lock
// (two atomics each); a rebuild locks one region, waits for the writes in
// it to finish, copies it, and unlocks it. A write that finds its region
// locked is parked (by the nexus) and started again at the unlock.
//
// The Dekker-style pair (writer: inflight++ then read locked; rebuild:
// locked = 1 then read inflight) is sequentially consistent, so either the
// writer sees the lock or the rebuild sees the writer.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

namespace offcore::nexus {

class RegionTable {
 public:
  explicit RegionTable(uint64_t regions)
      : regions_(regions),
        inflight_(std::make_unique<std::atomic<uint32_t>[]>(regions)),
        locked_(std::make_unique<std::atomic<uint8_t>[]>(regions)) {}

  uint64_t size() const { return regions_; }

  // Enters regions first..last; false (and nothing entered) if one is locked.
  bool enter(uint64_t first, uint64_t last) {
    for (uint64_t r = first; r <= last; ++r) inflight_[r].fetch_add(1);
    for (uint64_t r = first; r <= last; ++r) {
      if (locked_[r].load()) {
        exit(first, last);
        return false;
      }
    }
    return true;
  }
  void exit(uint64_t first, uint64_t last) {
    for (uint64_t r = first; r <= last; ++r) inflight_[r].fetch_sub(1);
  }
  bool anyLocked(uint64_t first, uint64_t last) const {
    for (uint64_t r = first; r <= last; ++r) {
      if (locked_[r].load()) return true;
    }
    return false;
  }
  // The rebuild's side: lock, then wait for inflight(r) == 0.
  void lock(uint64_t r) { locked_[r].store(1); }
  void unlock(uint64_t r) { locked_[r].store(0); }
  uint32_t inflight(uint64_t r) const { return inflight_[r].load(); }

 private:
  uint64_t regions_;
  std::unique_ptr<std::atomic<uint32_t>[]> inflight_;
  std::unique_ptr<std::atomic<uint8_t>[]> locked_;
};

}  // namespace offcore::nexus
