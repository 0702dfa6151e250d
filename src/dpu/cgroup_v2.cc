// cgroup v2: one hierarchy. Processes live only in leaves ("no internal
// processes"), so offcore keeps them in soc/, host/ and host-infra/ and
// never in the node's own cgroup.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <set>
#include <sstream>

#include "base/files.h"
#include "dpu/cgroup.h"

namespace offcore {
namespace {

class CgroupV2Driver final : public CgroupDriver {
 public:
  explicit CgroupV2Driver(std::string root) : root_(std::move(root)) {}

  std::string version() const override { return "v2"; }

  Status create(const std::string& path, const CgroupSettings& settings) override {
    std::string dir = root_;
    for (const auto& part : std::filesystem::path(path)) {
      enableControllers(dir);
      dir += "/" + part.string();
      if (!pathExists(dir)) OC_TRY(makeDirs(dir));
    }
    if (!settings.cpus.empty()) {
      if (!pathExists(dir + "/cpuset.cpus")) {
        return makeError("cgroup v2 at " + root_ + " has no cpuset controller; cannot pin cpus");
      }
      OC_TRY(writeKernelFile(dir + "/cpuset.cpus", formatCpuList(settings.cpus)));
    }
    if (settings.memory_limit) {
      if (!pathExists(dir + "/memory.max")) {
        return makeError("cgroup v2 at " + root_ + " has no memory controller; cannot limit memory");
      }
      OC_TRY(writeKernelFile(dir + "/memory.max", std::to_string(*settings.memory_limit)));
    }
    return okStatus();
  }

  bool exists(const std::string& path) const override { return pathExists(root_ + "/" + path); }

  Status attach(const std::string& path, pid_t pid) override {
    return writeKernelFile(root_ + "/" + path + "/cgroup.procs", std::to_string(pid));
  }

  Result<CgroupUsage> usage(const std::string& path) const override {
    std::string dir = root_ + "/" + path;
    CgroupUsage u;
    OC_ASSIGN_OR_RETURN(std::string stat, readFile(dir + "/cpu.stat"));
    u.cpu_seconds = static_cast<double>(parseKeyedValue(stat, "usage_usec").value_or(0)) / 1e6;
    if (auto m = readFile(dir + "/memory.current"); m.ok()) u.memory_bytes = std::strtoull(m->c_str(), nullptr, 10);
    if (auto m = readFile(dir + "/memory.peak"); m.ok()) u.memory_peak_bytes = std::strtoull(m->c_str(), nullptr, 10);
    if (auto p = readFile(dir + "/pids.current"); p.ok()) u.pids = std::strtoull(p->c_str(), nullptr, 10);
    return u;
  }

  std::vector<pid_t> processes(const std::string& path) const override {
    std::set<pid_t> all;
    std::string top = root_ + "/" + path;
    if (pathExists(top)) collectCgroupProcesses(top, all);
    return {all.begin(), all.end()};
  }

  Status remove(const std::string& path) override {
    std::string top = root_ + "/" + path;
    if (!pathExists(top)) return okStatus();
    return removeCgroupTree(top);
  }

 private:
  // Turns on, for the children of dir, every controller offcore uses that dir
  // itself has. Missing controllers are reported by create() when needed.
  static void enableControllers(const std::string& dir) {
    auto available = readFile(dir + "/cgroup.controllers");
    if (!available.ok()) return;
    std::istringstream in(*available);
    std::string c;
    // One write per controller: a single refused one must not block the rest.
    while (in >> c) {
      if (c == "cpuset" || c == "cpu" || c == "memory" || c == "pids") {
        (void)writeKernelFile(dir + "/cgroup.subtree_control", "+" + c);
      }
    }
  }

  std::string root_;
};

}  // namespace

std::unique_ptr<CgroupDriver> makeCgroupV2Driver(const std::string& mount_root) {
  return std::make_unique<CgroupV2Driver>(mount_root);
}

}  // namespace offcore
