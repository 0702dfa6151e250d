// cgroup v1: one hierarchy per controller. cpu and cpuacct are often the same
// mount under two names; realpath() folds such twins so each is touched once.
#include <climits>
#include <cstdlib>
#include <filesystem>
#include <set>

#include "base/files.h"
#include "dpu/cgroup.h"

namespace offcore {
namespace {

class CgroupV1Driver final : public CgroupDriver {
 public:
  explicit CgroupV1Driver(std::string root) : root_(std::move(root)) {
    std::set<std::string> seen;
    for (const char* c : {"cpuset", "cpuacct", "cpu", "memory", "pids"}) {
      std::string p = root_ + "/" + c;
      char real[PATH_MAX];
      if (!::realpath(p.c_str(), real)) continue;
      if (seen.insert(real).second) hierarchies_.push_back(c);
    }
  }

  std::string version() const override { return "v1"; }

  Status create(const std::string& path, const CgroupSettings& settings) override {
    for (const auto& h : hierarchies_) {
      std::string dir = root_ + "/" + h;
      std::string parent = dir;
      for (const auto& part : std::filesystem::path(path)) {
        dir += "/" + part.string();
        if (!pathExists(dir)) {
          OC_TRY(makeDirs(dir));
          // A new cpuset is empty and refuses tasks until cpus and mems are set;
          // intermediate levels take their parent's.
          if (h == "cpuset") {
            OC_ASSIGN_OR_RETURN(std::string cpus, readFile(parent + "/cpuset.cpus"));
            OC_ASSIGN_OR_RETURN(std::string mems, readFile(parent + "/cpuset.mems"));
            OC_TRY(writeKernelFile(dir + "/cpuset.cpus", trim(cpus)));
            OC_TRY(writeKernelFile(dir + "/cpuset.mems", trim(mems)));
          }
        }
        parent = dir;
      }
      if (h == "cpuset" && !settings.cpus.empty()) {
        OC_TRY(writeKernelFile(dir + "/cpuset.cpus", formatCpuList(settings.cpus)));
      }
      if (h == "memory") {
        // Children are charged to their parents, as in v2.
        (void)writeKernelFile(dir + "/memory.use_hierarchy", "1");
        if (settings.memory_limit) {
          OC_TRY(writeKernelFile(dir + "/memory.limit_in_bytes", std::to_string(*settings.memory_limit)));
        }
      }
    }
    return okStatus();
  }

  bool exists(const std::string& path) const override {
    for (const auto& h : hierarchies_) {
      if (pathExists(root_ + "/" + h + "/" + path)) return true;
    }
    return false;
  }

  Status attach(const std::string& path, pid_t pid) override {
    for (const auto& h : hierarchies_) {
      OC_TRY(writeKernelFile(root_ + "/" + h + "/" + path + "/cgroup.procs", std::to_string(pid)));
    }
    return okStatus();
  }

  Result<CgroupUsage> usage(const std::string& path) const override {
    CgroupUsage u;
    OC_ASSIGN_OR_RETURN(std::string cpu_ns, readFile(root_ + "/cpuacct/" + path + "/cpuacct.usage"));
    u.cpu_seconds = static_cast<double>(std::strtoull(cpu_ns.c_str(), nullptr, 10)) / 1e9;
    if (auto m = readFile(root_ + "/memory/" + path + "/memory.usage_in_bytes"); m.ok())
      u.memory_bytes = std::strtoull(m->c_str(), nullptr, 10);
    if (auto m = readFile(root_ + "/memory/" + path + "/memory.max_usage_in_bytes"); m.ok())
      u.memory_peak_bytes = std::strtoull(m->c_str(), nullptr, 10);
    if (auto p = readFile(root_ + "/pids/" + path + "/pids.current"); p.ok())
      u.pids = std::strtoull(p->c_str(), nullptr, 10);
    return u;
  }

  std::vector<pid_t> processes(const std::string& path) const override {
    std::set<pid_t> all;
    for (const auto& h : hierarchies_) {
      std::string top = root_ + "/" + h + "/" + path;
      if (!pathExists(top)) continue;
      collectCgroupProcesses(top, all);
    }
    return {all.begin(), all.end()};
  }

  Status remove(const std::string& path) override {
    for (const auto& h : hierarchies_) {
      std::string top = root_ + "/" + h + "/" + path;
      if (!pathExists(top)) continue;
      OC_TRY(removeCgroupTree(top));
    }
    return okStatus();
  }

 private:
  std::string root_;
  std::vector<std::string> hierarchies_;
};

}  // namespace

std::unique_ptr<CgroupDriver> makeCgroupV1Driver(const std::string& mount_root) {
  return std::make_unique<CgroupV1Driver>(mount_root);
}

}  // namespace offcore
