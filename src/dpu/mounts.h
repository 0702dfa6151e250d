// Finding and removing mounts below a directory (a node's run dir holds its
// FUSE disks and image mounts in later subsystems).
#pragma once

#include <string>
#include <vector>

#include "base/result.h"

namespace offcore {

// Mount points at or below dir, deepest first, from /proc/self/mountinfo.
std::vector<std::string> mountsBelow(const std::string& dir);
// Parses one mountinfo text; exposed for tests.
std::vector<std::string> parseMountPoints(const std::string& mountinfo);
// Lazily unmounts everything at or below dir.
Status unmountBelow(const std::string& dir);

}  // namespace offcore
