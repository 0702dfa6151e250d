#include "dpu/mounts.h"

#include <sys/mount.h>

#include <algorithm>
#include <sstream>

#include "base/files.h"

namespace offcore {
namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescapeOctal(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      int v = 0;
      bool ok = true;
      for (size_t k = 1; k <= 3; ++k) {
        char c = s[i + k];
        if (c < '0' || c > '7') ok = false;
        v = v * 8 + (c - '0');
      }
      if (ok) {
        out += static_cast<char>(v);
        i += 3;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

}  // namespace

std::vector<std::string> parseMountPoints(const std::string& mountinfo) {
  std::vector<std::string> points;
  for (const auto& line : splitLines(mountinfo)) {
    std::istringstream in(line);
    std::string id, parent, devno, root, point;
    if (in >> id >> parent >> devno >> root >> point) points.push_back(unescapeOctal(point));
  }
  return points;
}

std::vector<std::string> mountsBelow(const std::string& dir) {
  auto text = readFile("/proc/self/mountinfo");
  if (!text.ok()) return {};
  std::vector<std::string> out;
  for (auto& p : parseMountPoints(*text)) {
    if (p == dir || p.rfind(dir + "/", 0) == 0) out.push_back(p);
  }
  std::sort(out.begin(), out.end(), [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  return out;
}

Status unmountBelow(const std::string& dir) {
  Status first;
  for (const auto& p : mountsBelow(dir)) {
    if (::umount2(p.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT && first.ok()) {
      first = errnoError("umount " + p);
    }
  }
  return first;
}

}  // namespace offcore
