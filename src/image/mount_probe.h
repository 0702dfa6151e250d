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

// Mounts `file` on `dir` through a loop device (losetup --find; with
// direct_io, no second page cache over the file's). The loop device is set
// to autoclear: it goes with the last unmount, so a process that dies before
// unmounting leaks none.
Status mountThroughLoop(const std::string& file, const std::string& dir, const char* fstype, unsigned long flags,
                        bool direct_io);

// Unmounts dir if it is a mount point (lazily if it is busy).
Status unmountDir(const std::string& dir);

}  // namespace offcore
