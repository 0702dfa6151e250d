#include "image/mount_probe.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <cerrno>

#include "base/subprocess.h"

namespace offcore {

bool isMountPoint(const std::string& dir) {
  struct statx stx {};
  if (::statx(AT_FDCWD, dir.c_str(), AT_NO_AUTOMOUNT | AT_SYMLINK_NOFOLLOW | AT_STATX_DONT_SYNC, STATX_BASIC_STATS,
              &stx) != 0) {
    return false;
  }
  if (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) return (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0;
  auto r = runCapture({"mountpoint", "-q", dir});
  return r.ok() && r->exit_code == 0;
}

bool mountHealthy(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return false;
  errno = 0;
  bool ok = ::readdir(d) != nullptr || errno == 0;
  ::closedir(d);
  return ok;
}

Status unmountDir(const std::string& dir) {
  if (!isMountPoint(dir)) return {};
  if (::umount2(dir.c_str(), 0) != 0 && ::umount2(dir.c_str(), MNT_DETACH) != 0) return errnoError("umount " + dir);
  return {};
}

}  // namespace offcore
