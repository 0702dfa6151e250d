// Small filesystem helpers that return Result instead of throwing.
#pragma once

#include <string>
#include <vector>

#include "base/result.h"

namespace offcore {

Result<std::string> readFile(const std::string& path);
// Writes to path.tmp, fsyncs, renames: readers see the old or the new file.
// Files are private (0600) unless the caller publishes them on purpose.
Status writeFileAtomic(const std::string& path, const std::string& data, unsigned mode = 0600);
// Plain write, for kernel files (cgroupfs, procfs) that must not be renamed.
Status writeKernelFile(const std::string& path, const std::string& data);
// Creates the missing directories of `path` with `mode`; existing ones keep
// theirs (a later call never loosens what an earlier one made private).
Status makeDirs(const std::string& path, unsigned mode = 0755);
// A directory only root may enter (data, state, caches): made 0700, and an
// existing one is tightened to 0700.
Status makePrivateDir(const std::string& path);
bool pathExists(const std::string& path);
// True when something accepts connections on the unix socket at `path`.
bool unixSocketAnswers(const std::string& path);
// Removes a tree; missing paths are fine.
Status removeTree(const std::string& path);
std::string trim(std::string s);
std::vector<std::string> splitLines(const std::string& s);

// An exclusive flock held for the object's lifetime.
class FileLock {
 public:
  static Result<FileLock> acquire(const std::string& path);
  FileLock(FileLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  FileLock& operator=(FileLock&&) = delete;
  FileLock(const FileLock&) = delete;
  ~FileLock();

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace offcore
