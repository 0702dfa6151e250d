#include "dpu/rx_steering.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "base/files.h"
#include "base/subprocess.h"
#include "dpu/netns.h"

namespace offcore {

std::string rpsMask(const CpuSet& cpus) {
  if (cpus.empty()) return "0";
  int top = *cpus.rbegin();
  std::vector<uint32_t> words(static_cast<size_t>(top / 32 + 1), 0);
  for (int c : cpus) {
    if (c >= 0) words[static_cast<size_t>(c / 32)] |= 1u << (c % 32);
  }
  std::string out;
  char buf[16];
  for (size_t i = words.size(); i-- > 0;) {
    // The first (most significant) word unpadded, the others as 8 digits.
    std::snprintf(buf, sizeof buf, i + 1 == words.size() ? "%x" : "%08x", words[i]);
    if (!out.empty()) out += ',';
    out += buf;
  }
  return out;
}

namespace {

// In the child: the namespace's own view of /sys (as `ip netns exec` does).
SpawnOptions inNetnsWithSysfs(const std::string& netns_path) {
  SpawnOptions opts;
  opts.in_child = [netns_path]() -> Status {
    if (!netns_path.empty()) OC_TRY(enterNetnsAt(netns_path));
    if (::unshare(CLONE_NEWNS) != 0) return errnoError("unshare(CLONE_NEWNS)");
    // Our mounts must not propagate back to the caller's namespace.
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr) != 0) return errnoError("make / a slave mount");
    // Off with the inherited /sys first: a sysfs of the same namespace
    // mounted over itself is EBUSY.
    (void)::umount2("/sys", MNT_DETACH);
    if (::mount("sysfs", "/sys", "sysfs", 0, nullptr) != 0) return errnoError("mount sysfs");
    return okStatus();
  };
  return opts;
}

bool plainIfname(const std::string& name) {
  if (name.empty() || name.size() > 15) return false;
  for (char c : name) {
    if (c == '/' || c == '\0' || c == ' ') return false;
  }
  return name != "." && name != "..";
}

}  // namespace

Status steerRx(const std::string& netns_path, const std::string& ifname, const CpuSet& cpus) {
  if (!plainIfname(ifname)) return makeError("rx steering: bad interface name '" + ifname + "'");
  // Built before the fork: the child only makes syscalls.
  const std::string queues = "/sys/class/net/" + ifname + "/queues";
  const std::string mask = rpsMask(cpus) + "\n";
  SpawnOptions opts = inNetnsWithSysfs(netns_path);
  auto enter = opts.in_child;
  opts.in_child = [enter, queues, mask]() -> Status {
    OC_TRY(enter());
    // A veth has one rx queue per channel it was made with; steer them all.
    DIR* dir = ::opendir(queues.c_str());
    if (dir == nullptr) return errnoError("open " + queues);
    int written = 0;
    char path[256];
    while (struct dirent* e = ::readdir(dir)) {
      if (std::strncmp(e->d_name, "rx-", 3) != 0) continue;
      int n = std::snprintf(path, sizeof path, "%s/%s/rps_cpus", queues.c_str(), e->d_name);
      if (n < 0 || static_cast<size_t>(n) >= sizeof path) continue;  // no such sysfs name
      int fd = ::open(path, O_WRONLY | O_CLOEXEC);
      bool ok = fd >= 0 && ::write(fd, mask.data(), mask.size()) == static_cast<ssize_t>(mask.size());
      int err = errno;
      if (fd >= 0) ::close(fd);
      if (!ok) {
        ::closedir(dir);
        return errnoError(std::string("write ") + path, err);
      }
      ++written;
    }
    ::closedir(dir);
    if (written == 0) return makeError("no receive queues under " + queues);
    return okStatus();
  };
  auto r = runCapture({"true"}, opts);
  if (!r.ok()) return r.error().wrap("rx steering of " + ifname);
  if (r->exit_code != 0) {
    return makeError("rx steering of " + ifname + " to cpus " + formatCpuList(cpus) + " failed: " + trim(r->err));
  }
  return okStatus();
}

Result<std::string> rxSteering(const std::string& netns_path, const std::string& ifname) {
  if (!plainIfname(ifname)) return makeError("rx steering: bad interface name '" + ifname + "'");
  auto r = runCapture({"cat", "/sys/class/net/" + ifname + "/queues/rx-0/rps_cpus"}, inNetnsWithSysfs(netns_path));
  if (!r.ok()) return r.error().wrap("rx steering of " + ifname);
  if (r->exit_code != 0) return makeError("cannot read the rx steering of " + ifname + ": " + trim(r->err));
  return trim(r->out);
}

}  // namespace offcore
