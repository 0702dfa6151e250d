#include "base/dir_watch.h"

#include <sys/inotify.h>
#include <unistd.h>

namespace offcore {

DirWatch::~DirWatch() {
  loop_.unwatchFd(fd_);
  ::close(fd_);
}

Result<std::unique_ptr<DirWatch>> DirWatch::start(EventLoop& loop, const std::vector<std::string>& dirs,
                                                  std::function<void()> changed) {
  int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) return errnoError("inotify_init1");
  for (const std::string& dir : dirs) {
    if (::inotify_add_watch(fd, dir.c_str(), IN_MOVED_TO | IN_CLOSE_WRITE | IN_DELETE) < 0) {
      Error e = errnoError("watch " + dir);
      ::close(fd);
      return e;
    }
  }
  Status s = loop.watchFd(fd, EPOLLIN, [fd, changed = std::move(changed)](uint32_t) {
    alignas(inotify_event) char buf[4096];
    while (::read(fd, buf, sizeof buf) > 0) {}
    changed();
  });
  if (!s.ok()) {
    ::close(fd);
    return s.error();
  }
  return std::unique_ptr<DirWatch>(new DirWatch(loop, fd));
}

}  // namespace offcore
