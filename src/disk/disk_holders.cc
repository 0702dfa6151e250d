#include "disk/disk_holders.h"

#include <unistd.h>

#include <filesystem>
#include <sstream>

#include "base/files.h"

namespace offcore {

namespace fs = std::filesystem;

std::vector<std::string> mountPointsOf(const std::string& mountinfo, const std::string& source) {
  std::vector<std::string> out;
  std::istringstream in(mountinfo);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string id, parent, devno, root, point, word;
    f >> id >> parent >> devno >> root >> point;
    // Optional fields up to "-", then fstype and source.
    while (f >> word && word != "-") {}
    std::string fstype, src;
    if (f >> fstype >> src && src == source) out.push_back(point);
  }
  return out;
}

std::string joinHolders(const std::vector<std::string>& holders) {
  std::string out;
  for (const auto& h : holders) out += (out.empty() ? "" : ", ") + h;
  return out;
}

namespace {

std::string onWhat(const std::vector<std::string>& points) {
  if (points.empty()) return "";
  return " (mounted on " + joinHolders(points) + ")";
}

void addLoops(const std::string& file, const HostView& v, const std::string& mountinfo, std::vector<std::string>& out) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(v.sys + "/block", ec)) {
    std::string dev = e.path().filename().string();
    if (dev.rfind("loop", 0) != 0) continue;
    auto backing = readFile(e.path().string() + "/loop/backing_file");
    if (!backing.ok() || trim(*backing) != file) continue;
    out.push_back("/dev/" + dev + onWhat(mountPointsOf(mountinfo, "/dev/" + dev)));
  }
}

void addOpeners(const std::string& file, const HostView& v, std::vector<std::string>& out) {
  std::error_code ec;
  for (const auto& p : fs::directory_iterator(v.proc, ec)) {
    std::string pid = p.path().filename().string();
    if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) continue;
    if (v.self >= 0 && pid == std::to_string(v.self)) continue;
    std::error_code fec;
    for (const auto& fd : fs::directory_iterator(p.path() / "fd", fec)) {
      std::error_code lec;
      if (fs::read_symlink(fd.path(), lec).string() != file) continue;
      std::string comm = trim(readFile(p.path().string() + "/comm").valueOr("?"));
      out.push_back("pid " + pid + " (" + comm + ")");
      break;
    }
  }
}

}  // namespace

std::vector<std::string> diskHolders(const std::string& file, const HostView& v) {
  std::vector<std::string> out;
  std::string mountinfo = readFile(v.proc + "/self/mountinfo").valueOr("");
  addLoops(file, v, mountinfo, out);
  for (const auto& point : mountPointsOf(mountinfo, file)) out.push_back("mounted on " + point);
  addOpeners(file, v, out);
  return out;
}

}  // namespace offcore
