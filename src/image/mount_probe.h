// Questions about a mount point the remote source asks on every container
// create, answered without a process per question.
#pragma once

#include <string>

#include "base/result.h"

namespace offcore {

// Whether dir is the root of a mount (one statx; `mountpoint` only on
// kernels that do not report STATX_ATTR_MOUNT_ROOT).
bool isMountPoint(const std::string& dir);

// A mount whose FUSE daemon died answers ENOTCONN/EIO: it must be replaced.
bool mountHealthy(const std::string& dir);

// Unmounts dir if it is a mount point (lazily if it is busy).
Status unmountDir(const std::string& dir);

}  // namespace offcore
