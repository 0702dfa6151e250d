// A shared flock for readers of files whose writers take a FileLock
// (base/files.h) on the same path. A missing lock file means nobody has
// written yet: no lock.
#pragma once

#include <string>

namespace offcore {

class SharedFileLock {
 public:
  explicit SharedFileLock(const std::string& path);
  ~SharedFileLock();
  SharedFileLock(const SharedFileLock&) = delete;
  SharedFileLock& operator=(const SharedFileLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace offcore
