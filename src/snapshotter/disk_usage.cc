#include "snapshotter/disk_usage.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <set>
#include <vector>

namespace offcore {

Result<DiskUsage> diskUsage(const std::string& dir) {
  struct stat root;
  if (::lstat(dir.c_str(), &root) != 0) return errnoError("du " + dir);
  DiskUsage u;
  std::set<ino_t> seen;
  auto count = [&](const struct stat& st) {
    if (seen.insert(st.st_ino).second) {
      u.size += static_cast<int64_t>(st.st_blocks) * 512;
      ++u.inodes;
    }
  };
  count(root);
  // Explicit stack: image trees can be deeper than we want to recurse.
  std::vector<std::string> todo{dir};
  while (!todo.empty()) {
    std::string d = std::move(todo.back());
    todo.pop_back();
    int fd = ::open(d.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return errnoError("du " + d);
    DIR* dp = ::fdopendir(fd);
    if (!dp) {
      int e = errno;
      ::close(fd);
      return errnoError("du " + d, e);
    }
    while (struct dirent* e = ::readdir(dp)) {
      std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      struct stat st;
      if (::fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;  // raced with a delete
      if (st.st_dev != root.st_dev) continue;
      count(st);
      if (S_ISDIR(st.st_mode)) todo.push_back(d + "/" + name);
    }
    ::closedir(dp);
  }
  return u;
}

}  // namespace offcore
