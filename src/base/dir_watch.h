// DirWatch: "something in these directories changed", on an EventLoop, by
// inotify (a file renamed in, closed after writing, or removed). What
// changed is not said: the stores it serves keep one document per file
// and re-read. Stops when destroyed (on the loop's thread).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/event_loop.h"
#include "base/result.h"

namespace offcore {

class DirWatch {
 public:
  ~DirWatch();
  DirWatch(const DirWatch&) = delete;
  DirWatch& operator=(const DirWatch&) = delete;

  // The directories must exist. changed runs on loop's thread, once per
  // batch of events read.
  static Result<std::unique_ptr<DirWatch>> start(EventLoop& loop, const std::vector<std::string>& dirs,
                                                 std::function<void()> changed);

 private:
  DirWatch(EventLoop& loop, int fd) : loop_(loop), fd_(fd) {}
  EventLoop& loop_;
  int fd_;
};

}  // namespace offcore
