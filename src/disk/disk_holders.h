// Who holds a disk file on the host: loop devices backed by it (and where
// they are mounted), filesystems mounted straight from it (file-backed
// EROFS), and processes with it open. `disk detach` refuses a busy disk
// with this list rather than cut its users off.
#pragma once

#include <sys/types.h>
#include <string>
#include <vector>

namespace offcore {

struct HostView {
  std::string proc = "/proc";  // whose mountinfo (self) and /proc/PID/fd are read
  std::string sys = "/sys";    // /sys/block/loop*/loop/backing_file
  pid_t self = -1;             // a pid not to report (the caller); -1: none
};

// One entry per holder, e.g. "/dev/loop3 (mounted on /mnt/x)",
// "mounted on /mnt/y", "pid 1234 (fio)". Empty: nothing holds the file.
std::vector<std::string> diskHolders(const std::string& file, const HostView& view = {});

// Mount points whose source (the field after " - fstype") is `source`.
std::vector<std::string> mountPointsOf(const std::string& mountinfo, const std::string& source);

// "a, b, c".
std::string joinHolders(const std::vector<std::string>& holders);

}  // namespace offcore
