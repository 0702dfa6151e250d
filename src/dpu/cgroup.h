// CgroupDriver: the accounting and pinning half of a domain.
//
// Two implementations, chosen at run time by makeCgroupDriver(): cgroup v1
// (one hierarchy per controller, what these machines have) and cgroup v2
// (one unified hierarchy). Callers only ever see relative paths such as
// "offcore/a/soc"; the driver maps them onto its hierarchy.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/cpu_list.h"
#include "base/result.h"

namespace offcore {

struct CgroupSettings {
  CpuSet cpus;                           // empty: inherit the parent's
  std::optional<uint64_t> memory_limit;  // bytes; none: unlimited
};

struct CgroupUsage {
  double cpu_seconds = 0;
  uint64_t memory_bytes = 0;       // current charge, page cache included
  uint64_t memory_peak_bytes = 0;  // high-water mark (0 where the kernel has none)
  uint64_t pids = 0;
};

class CgroupDriver {
 public:
  virtual ~CgroupDriver() = default;

  virtual std::string version() const = 0;  // "v1" or "v2"
  // Creates `path` and any missing parents; applies settings to the leaf.
  virtual Status create(const std::string& path, const CgroupSettings& settings) = 0;
  virtual bool exists(const std::string& path) const = 0;
  // Moves pid (a whole process) into path.
  virtual Status attach(const std::string& path, pid_t pid) = 0;
  virtual Result<CgroupUsage> usage(const std::string& path) const = 0;
  // Every process in path and below it.
  virtual std::vector<pid_t> processes(const std::string& path) const = 0;
  // Removes path and everything below it. The cgroups must hold no processes.
  // A missing path is not an error.
  virtual Status remove(const std::string& path) = 0;
};

// Detects the hierarchy mounted at mount_root. Errors when neither is usable.
Result<std::unique_ptr<CgroupDriver>> makeCgroupDriver(const std::string& mount_root = "/sys/fs/cgroup");

// Exposed for tests that drive one version directly.
std::unique_ptr<CgroupDriver> makeCgroupV1Driver(const std::string& mount_root);
std::unique_ptr<CgroupDriver> makeCgroupV2Driver(const std::string& mount_root);

// Kills every process in path (SIGKILL) and waits until it is empty, up to
// timeout_ms. Used by `dpu down`: the cgroup is the node's process registry.
Status killCgroupProcesses(CgroupDriver& driver, const std::string& path, int timeout_ms);

// Helpers shared by the drivers.
// Adds the processes of dir and every cgroup below it.
void collectCgroupProcesses(const std::string& dir, std::set<pid_t>& into);
// cgroupfs directories are removed with rmdir alone, children first: their
// control files cannot be unlinked, so std::filesystem::remove_all fails.
Status removeCgroupTree(const std::string& dir);

// Parsing helpers shared by the drivers, exposed for unit tests.
std::vector<pid_t> parsePidList(const std::string& text);
// "usage_usec 123\n..." -> value for key, or nullopt.
std::optional<uint64_t> parseKeyedValue(const std::string& text, const std::string& key);

}  // namespace offcore
