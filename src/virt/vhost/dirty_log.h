// DirtyLog: the migration log (VHOST_F_LOG_ALL, SET_LOG_BASE with
// VHOST_USER_PROTOCOL_F_LOG_SHMFD). One bit per 4 KiB page of guest-physical
// memory, bit (gpa / 4096) of the shared log; the back end sets the bit of
// every page it writes while logging is on, with an atomic OR because the
// front end clears bits concurrently.
#pragma once

#include <cstdint>
#include <memory>

#include "base/result.h"

namespace offcore::virt {

inline constexpr uint64_t kLogPageSize = 4096;

class DirtyLog {
 public:
  virtual ~DirtyLog() = default;

  // Maps [offset, offset + size) of fd (MAP_SHARED). Always closes fd.
  static Result<std::unique_ptr<DirtyLog>> map(int fd, uint64_t size, uint64_t offset);

  // Marks every page of [gpa, gpa + len) dirty. Pages beyond the log are
  // ignored (the front end sized it; a larger guest address is its bug, not a
  // reason to touch memory outside the mapping).
  virtual void mark(uint64_t gpa, uint64_t len) = 0;
};

}  // namespace offcore::virt
