// A FuseDisk whose FUSE connection is parked in an fd keeper
// (disk/fd_keeper.h), so the process serving it can die (kill -9, a crash)
// and the next one take over the same connection: the host's loop devices,
// mounts and open files see a pause, not an error.
#pragma once

#include <memory>
#include <string>

#include "base/result.h"
#include "block/block_device.h"
#include "disk/fuse_disk.h"

namespace offcore {

struct KeptDisk {
  std::unique_ptr<FuseDisk> disk;
  bool adopted = false;  // took over a connection a dead process left
};

// If `file` is still mounted and the keeper holds a connection under `name`,
// adopts it (FuseDisk::adopt: requests the dead process had read are resent);
// otherwise mounts afresh and parks a dup of the new connection's fd in the
// keeper. options.clone_fd is forced off (the keeper's dup must be the fd
// the workers read). A keeper that cannot be reached costs only the
// survival of a restart, and is logged; a failed adoption detaches the
// stale mount and mounts afresh.
Result<KeptDisk> mountKept(const std::string& keeper_socket, const std::string& name, const std::string& file,
                           std::shared_ptr<BlockDevice> device, FuseDiskOptions options);

// Takes the connection out of the keeper: call it before unmounting on
// purpose, or the keeper would hold a dead connection.
void releaseKept(const std::string& keeper_socket, const std::string& name);

// True when something is mounted exactly on `path` (from mountinfo text).
bool mountedAt(const std::string& mountinfo, const std::string& path);

}  // namespace offcore
