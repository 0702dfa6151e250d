#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <sstream>
#include <thread>

#include "base/files.h"
#include "dpu/cgroup.h"

namespace offcore {

std::vector<pid_t> parsePidList(const std::string& text) {
  std::vector<pid_t> pids;
  std::istringstream in(text);
  long v;
  while (in >> v) pids.push_back(static_cast<pid_t>(v));
  return pids;
}

std::optional<uint64_t> parseKeyedValue(const std::string& text, const std::string& key) {
  std::istringstream in(text);
  std::string k;
  uint64_t v;
  while (in >> k >> v) {
    if (k == key) return v;
  }
  return std::nullopt;
}

void collectCgroupProcesses(const std::string& dir, std::set<pid_t>& into) {
  if (auto procs = readFile(dir + "/cgroup.procs"); procs.ok()) {
    for (pid_t p : parsePidList(*procs)) into.insert(p);
  }
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    if (e.is_directory()) collectCgroupProcesses(e.path().string(), into);
  }
}

Status removeCgroupTree(const std::string& dir) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    if (e.is_directory()) OC_TRY(removeCgroupTree(e.path().string()));
  }
  if (::rmdir(dir.c_str()) != 0 && errno != ENOENT) return errnoError("rmdir " + dir);
  return okStatus();
}

Result<std::unique_ptr<CgroupDriver>> makeCgroupDriver(const std::string& mount_root) {
  if (pathExists(mount_root + "/cgroup.controllers")) return makeCgroupV2Driver(mount_root);
  if (pathExists(mount_root + "/cpuacct") || pathExists(mount_root + "/cpu,cpuacct")) {
    return makeCgroupV1Driver(mount_root);
  }
  return makeError("no cgroup filesystem at " + mount_root +
                   " (mount cgroup v2 there, or the v1 cpuset/cpuacct/memory/pids hierarchies)");
}

Status killCgroupProcesses(CgroupDriver& driver, const std::string& path, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    auto pids = driver.processes(path);
    if (pids.empty()) return okStatus();
    for (pid_t p : pids) ::kill(p, SIGKILL);
    if (std::chrono::steady_clock::now() > deadline) {
      return makeError("processes still alive in cgroup " + path + " after SIGKILL");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace offcore
