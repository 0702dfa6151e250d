// What `du` reports for a snapshot's upper directory, computed like
// containerd's continuity fs.DiskUsage: allocated bytes (st_blocks * 512)
// and inodes, each hard-linked inode counted once, same filesystem only.
#pragma once

#include <cstdint>
#include <string>

#include "base/result.h"

namespace offcore {

struct DiskUsage {
  int64_t size = 0;
  int64_t inodes = 0;
};

Result<DiskUsage> diskUsage(const std::string& dir);

}  // namespace offcore
