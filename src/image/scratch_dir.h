// A conversion's scratch directory: WORK/run-<pid>-<start ticks>-XXXXXX,
// holding the layer blob, the unpacked tree and the built image of the layer
// in progress. It goes away with the object, with the process on SIGTERM or
// SIGINT, and otherwise (SIGKILL, a crash, a power cut) with the next
// conversion that finds it: the pid and its start time name the process that
// made it (a pid alone may have been reused), and the directory's .lock,
// flocked by its owner for as long as it runs, vetoes the removal of a live
// owner's directory whose pid means nothing here (another pid namespace).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"

namespace offcore {

class ScratchDir {
 public:
  // Makes the directory under work_dir (which must exist). remove_on_signal
  // installs handlers for SIGTERM and SIGINT (those not ignored): on either,
  // a watcher thread removes every live scratch directory of the process,
  // puts back the previous disposition and raises the signal again, so the
  // process still ends the way it was told to.
  static Result<std::unique_ptr<ScratchDir>> create(const std::string& work_dir, bool remove_on_signal);
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  explicit ScratchDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
  int lock_fd_ = -1;
  bool on_signal_ = false;
};

// The owner a scratch directory's name records; pid 0 for names this code
// did not make, e.g. the run-XXXXXX of older versions (never swept).
struct ScratchOwner {
  pid_t pid = 0;
  uint64_t start_ticks = 0;
};
ScratchOwner scratchOwner(const std::string& name);

// Removes the scratch directories under work_dir whose owner is gone (no
// such process, a zombie, or a different process under a reused pid).
// Directories of live converters and names it cannot attribute are kept.
// Returns the removed paths.
Result<std::vector<std::string>> sweepStaleScratch(const std::string& work_dir);

}  // namespace offcore
