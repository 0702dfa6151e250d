#include "image/mount_probe.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <cerrno>

#include <vector>

#include "base/files.h"
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

Status mountThroughLoop(const std::string& file, const std::string& dir, const char* fstype, unsigned long flags,
                        bool direct_io) {
  std::vector<std::string> args{"losetup", "--find", "--show"};
  if (direct_io) args.push_back("--direct-io=on");
  if (flags & MS_RDONLY) args.push_back("--read-only");
  args.push_back(file);
  OC_ASSIGN_OR_RETURN(auto lo, runCapture(args));
  if (lo.exit_code != 0) return makeError("losetup " + file + ": " + trim(lo.err));
  const std::string dev = trim(lo.out);
  if (::mount(dev.c_str(), dir.c_str(), fstype, flags, nullptr) != 0) {
    Error e = errnoError(std::string("mount ") + fstype + " " + dev + " on " + dir);
    (void)runCapture({"losetup", "-d", dev});
    return e;
  }
  (void)runCapture({"losetup", "-d", dev});  // autoclear once unmounted
  return {};
}

Status unmountDir(const std::string& dir) {
  if (!isMountPoint(dir)) return {};
  if (::umount2(dir.c_str(), 0) != 0 && ::umount2(dir.c_str(), MNT_DETACH) != 0) return errnoError("umount " + dir);
  return {};
}

}  // namespace offcore
