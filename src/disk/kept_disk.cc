#include "disk/kept_disk.h"

#include <sys/mount.h>
#include <unistd.h>

#include <sstream>

#include "base/files.h"
#include "base/log.h"
#include "disk/fd_keeper.h"

namespace offcore {

bool mountedAt(const std::string& mountinfo, const std::string& path) {
  std::istringstream in(mountinfo);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string id, parent, devno, root, point;
    f >> id >> parent >> devno >> root >> point;
    if (point == path) return true;
  }
  return false;
}

namespace {

void park(const std::string& keeper, const std::string& name, const FuseDisk& disk) {
  int fd = ::dup(disk.connectionFd());
  Status s = fd < 0 ? Status(errnoError("dup")) : fdKeeperPut(keeper, name, fd);
  if (fd >= 0) ::close(fd);
  if (!s.ok()) {
    spdlog::warn("fuse disk {}: {}; a crash of this service will break the disk's users", disk.path(),
                 s.error().message);
  }
}

}  // namespace

Result<KeptDisk> mountKept(const std::string& keeper, const std::string& name, const std::string& file,
                           std::shared_ptr<BlockDevice> device, FuseDiskOptions options) {
  options.clone_fd = false;
  KeptDisk out;
  if (mountedAt(readFile("/proc/self/mountinfo").valueOr(""), file)) {
    auto fd = fdKeeperGet(keeper, name);
    Status s = !fd.ok()  ? Status(fd.error())
               : *fd < 0 ? Status(makeError("the fd keeper holds no connection for it"))
                         : okStatus();
    if (s.ok()) {
      auto adopted = FuseDisk::adopt(file, *fd, device, options);  // takes the fd
      if (adopted.ok()) {
        out.disk = std::move(*adopted);
        out.adopted = true;
        return out;
      }
      s = adopted.error();
    }
    // The old connection is lost: its users get errors, new users a new file.
    spdlog::warn("fuse disk {}: cannot take over the connection of the previous process ({}); mounting afresh", file,
                 s.error().message);
    (void)fdKeeperDel(keeper, name);
    (void)::umount2(file.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW);
  }
  OC_ASSIGN_OR_RETURN(out.disk, FuseDisk::mount(file, std::move(device), options));
  park(keeper, name, *out.disk);
  return out;
}

void releaseKept(const std::string& keeper, const std::string& name) {
  if (Status s = fdKeeperDel(keeper, name); !s.ok()) spdlog::debug("{}", s.error().message);
}

}  // namespace offcore
