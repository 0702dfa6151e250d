// FuseDisk: presents a BlockDevice to the host as one regular file, the
// software DPU's stand-in for an NVMe namespace showing up as a local disk.
// The host uses the file like a disk: losetup, mkfs, mount, fio.
//
// A FUSE filesystem is mounted *onto a regular file* (its root inode is
// S_IFREG with the device's size) and served by libfuse3 worker threads of
// this process. See src/disk/README.md for threads, error mapping and the
// unmount ordering.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "base/result.h"
#include "block/block_device.h"

namespace offcore {

struct FuseDiskOptions {
  // Mounts with MS_RDONLY; opens for writing fail with EROFS.
  bool read_only = false;
  // Lets processes of other users and user namespaces (containers, a root
  // loop device set up from another domain) open the file. Access is still
  // checked against `mode` (default_permissions).
  bool allow_other = true;
  // FOPEN_DIRECT_IO: every read and write goes to the daemon, bypassing the
  // FUSE file's page cache. Off by default: a loop device or EROFS on top
  // already caches, and page-cache reads give the kernel's readahead.
  bool direct_io = false;
  uint32_t mode = 0600;                 // permission bits of the file; owner = this process
  unsigned max_threads = 8;             // libfuse workers (each with its own cloned /dev/fuse fd)
  std::string fsname = "offcore-disk";  // shown in /proc/mounts
  // One cloned /dev/fuse fd per worker (faster) or one shared fd. With one
  // fd, a keeper process holding a dup of it keeps the connection — and the
  // requests a dying server had read — for adopt() in the next process.
  bool clone_fd = true;
  // How long unmount() retries EBUSY (a loop device is released
  // asynchronously after `losetup -d`) before detaching lazily.
  std::chrono::milliseconds busy_timeout{3000};
};

struct FuseDiskStats {
  uint64_t reads = 0;
  uint64_t writes = 0;
  uint64_t flushes = 0;       // fsync/fdatasync -> device flush
  uint64_t discards = 0;      // fallocate punch-hole
  uint64_t write_zeroes = 0;  // fallocate zero-range
  uint64_t bytes_read = 0;
  uint64_t bytes_written = 0;
  uint64_t errors = 0;              // requests answered with an error
  uint64_t read_modify_writes = 0;  // partial blocks merged
};

class FuseDisk {
 public:
  // Creates file_path if missing (and its parent directories), then mounts
  // and serves it. Returns once the file answers through the mount. Needs
  // root and /dev/fuse. A stale mount left by a dead daemon on file_path is
  // detached first.
  static Result<std::unique_ptr<FuseDisk>> mount(const std::string& file_path, std::shared_ptr<BlockDevice> device,
                                                 const FuseDiskOptions& options = {});
  // Serves an existing connection in a new process: `fd` is a dup of the
  // /dev/fuse fd of a FuseDisk (clone_fd off) that served file_path before
  // and died. libfuse is given a replayed INIT locally (the kernel's INIT
  // was answered long ago), then the kernel is asked to resend every request
  // the old server had read but not answered (FUSE_NOTIFY_RESEND, Linux
  // 6.9+). Takes ownership of fd.
  static Result<std::unique_ptr<FuseDisk>> adopt(const std::string& file_path, int fd,
                                                 std::shared_ptr<BlockDevice> device,
                                                 const FuseDiskOptions& options = {});
  // The connection's /dev/fuse fd, to hand a dup of it to a keeper.
  int connectionFd() const;
  // Stops serving without unmounting: the connection lives on in the keeper.
  void abandon();

  ~FuseDisk();  // unmount(), logging a failure
  FuseDisk(const FuseDisk&) = delete;
  FuseDisk& operator=(const FuseDisk&) = delete;

  // Unmounts and stops the workers. EBUSY is retried for busy_timeout, then
  // the file is detached lazily and the FUSE connection aborted, so any
  // remaining user (a forgotten loop device) gets I/O errors; that case
  // returns an EBUSY error although everything is torn down. Idempotent.
  Status unmount();
  // The same with its own EBUSY wait: 0 cuts a busy file off at once (a
  // deliberate stop of the service, whose users must get errors, not wait).
  Status unmount(std::chrono::milliseconds busy_timeout);

  FuseDiskStats stats() const;
  // Whether something holds the file open (a mount, a loop device): opens
  // minus releases, and true whenever the connection was adopted (its
  // earlier opens are unknown to this process).
  bool inUse() const;
  const std::string& path() const { return path_; }
  bool mounted() const;

  struct Server;  // the state the FUSE callbacks see; defined in fuse_disk.cc

 private:
  FuseDisk(std::string path, std::shared_ptr<Server> server) : path_(std::move(path)), server_(std::move(server)) {}

  const std::string path_;
  std::shared_ptr<Server> server_;
  mutable std::mutex mu_;  // serialises unmount() against itself
  bool mounted_ = true;
};

}  // namespace offcore
