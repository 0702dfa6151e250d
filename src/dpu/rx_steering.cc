#include "dpu/rx_steering.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

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

// Runs opts.in_child in a child process; its error (stderr) names what failed.
Status runSteering(const SpawnOptions& opts, const std::string& what, const std::string& ifname, const CpuSet& cpus) {
  auto r = runCapture({"true"}, opts);
  if (!r.ok()) return r.error().wrap(what + " of " + ifname);
  if (r->exit_code != 0) {
    return makeError(what + " of " + ifname + " to cpus " + formatCpuList(cpus) + " failed: " + trim(r->err));
  }
  return okStatus();
}

Status writeText(const char* path, const char* text) {
  int fd = ::open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errnoError(std::string("open ") + path);
  size_t n = std::strlen(text);
  bool ok = ::write(fd, text, n) == static_cast<ssize_t>(n);
  int err = errno;
  ::close(fd);
  if (!ok) return errnoError(std::string("write ") + path, err);
  return okStatus();
}

// Writes `mask` to rps_cpus of every receive queue under `queues` (a veth
// has one per channel it was made with); *written counts them. Child-safe:
// syscalls only, strings only on errors.
Status writeRpsMasks(const std::string& queues, const char* mask, int* written) {
  *written = 0;
  DIR* dir = ::opendir(queues.c_str());
  if (dir == nullptr) return errnoError("open " + queues);
  char path[256];
  Status st;
  while (struct dirent* e = ::readdir(dir)) {
    if (std::strncmp(e->d_name, "rx-", 3) != 0) continue;
    int n = std::snprintf(path, sizeof path, "%s/%s/rps_cpus", queues.c_str(), e->d_name);
    if (n < 0 || static_cast<size_t>(n) >= sizeof path) continue;  // no such sysfs name
    st = writeText(path, mask);
    if (!st.ok()) break;
    ++*written;
  }
  ::closedir(dir);
  return st;
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
    int written = 0;
    OC_TRY(writeRpsMasks(queues, mask.c_str(), &written));
    if (written == 0) return makeError("no receive queues under " + queues);
    return okStatus();
  };
  return runSteering(opts, "rx steering", ifname, cpus);
}

namespace {

// An ethtool "set value" command (ETHTOOL_SGRO) on ifname in
// the calling thread's namespace. Child-safe: syscalls only.
Status ethtoolSet(const std::string& ifname, uint32_t cmd, uint32_t value) {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errnoError("socket for ethtool");
  ethtool_value v{};
  v.cmd = cmd;
  v.data = value;
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, ifname.c_str(), std::min(ifname.size(), sizeof ifr.ifr_name - 1));
  ifr.ifr_data = reinterpret_cast<char*>(&v);
  int rc = ::ioctl(fd, SIOCETHTOOL, &ifr);
  int err = errno;
  ::close(fd);
  if (rc != 0) return errnoError("ethtool " + std::to_string(cmd) + " on " + ifname, err);
  return okStatus();
}

// Kernel threads named "napi/IFNAME-<id>" (prefix; the name they were
// created with), at most `max` into `out`; returns how many. No allocation:
// it runs in a forked child.
int napiThreads(const char* prefix, pid_t* out, int max) {
  int count = 0;
  // A thread's name is cut to 15 characters (TASK_COMM_LEN - 1).
  const size_t prefix_len = std::min<size_t>(std::strlen(prefix), 15);
  DIR* dir = ::opendir("/proc");
  if (dir == nullptr) return 0;
  char path[64], comm[64];
  while (struct dirent* e = ::readdir(dir)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (pid <= 0 || *end != '\0') continue;
    std::snprintf(path, sizeof path, "/proc/%ld/comm", pid);
    int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ssize_t n = ::read(fd, comm, sizeof comm - 1);
    ::close(fd);
    if (n <= 0) continue;
    comm[n] = '\0';
    if (std::strncmp(comm, prefix, prefix_len) == 0 && count < max) out[count++] = static_cast<pid_t>(pid);
  }
  ::closedir(dir);
  return count;
}

constexpr int kMaxNapiThreads = 1024;

// Serialises the "which napi threads are new" diff between agents.
constexpr const char* kNapiLock = "/run/offcore-napi-steering.lock";

}  // namespace

Status steerRxNapi(const std::string& netns_path, const std::string& ifname, const CpuSet& cpus) {
  if (!plainIfname(ifname)) return makeError("rx steering: bad interface name '" + ifname + "'");
  if (cpus.empty()) return makeError("rx steering of " + ifname + ": no cpus");
  const std::string dev = "/sys/class/net/" + ifname;
  const std::string prefix = "napi/" + ifname + "-";
  const std::string queues = dev + "/queues", threaded = dev + "/threaded";
  cpu_set_t mask;
  CPU_ZERO(&mask);
  for (int c : cpus) {
    if (c >= 0 && c < CPU_SETSIZE) CPU_SET(c, &mask);
  }
  SpawnOptions opts = inNetnsWithSysfs(netns_path);
  auto enter = opts.in_child;
  // Built before the fork: the child makes syscalls (and strings only on errors).
  opts.in_child = [enter, ifname, prefix, queues, threaded, mask]() -> Status {
    OC_TRY(enter());
    OC_TRY(ethtoolSet(ifname, ETHTOOL_SGRO, 1));
    // RPS off: the NAPI thread is where the work goes.
    int written = 0;
    (void)writeRpsMasks(queues, "0\n", &written);
    int lock = ::open(kNapiLock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock < 0 || ::flock(lock, LOCK_EX) != 0) return errnoError(std::string("lock ") + kNapiLock);
    // Threads made now are this device's: off first, so a re-steer (an
    // agent restarted) gets fresh ones it can tell apart.
    (void)writeText(threaded.c_str(), "0\n");
    static pid_t before[kMaxNapiThreads], after[kMaxNapiThreads];
    int nb = napiThreads(prefix.c_str(), before, kMaxNapiThreads);
    Status st = writeText(threaded.c_str(), "1\n");
    int na = napiThreads(prefix.c_str(), after, kMaxNapiThreads);
    ::close(lock);
    OC_TRY(st);
    int pinned = 0;
    for (int i = 0; i < na; ++i) {
      if (std::find(before, before + nb, after[i]) != before + nb) continue;
      if (::sched_setaffinity(after[i], sizeof mask, &mask) != 0) return errnoError("pin a NAPI thread");
      ++pinned;
    }
    if (pinned == 0) return makeError("no NAPI thread appeared for " + ifname + " (is it up?)");
    return okStatus();
  };
  return runSteering(opts, "NAPI steering", ifname, cpus);
}

Status disableTso(const std::string& netns_path, const std::string& ifname) {
  if (!plainIfname(ifname)) return makeError("tso: bad interface name '" + ifname + "'");
  // ethtool(8)'s "tso" is every TCP segmentation feature of the kernel
  // (tx-tcp, -ecn, -mangleid, tcp6, accecn, ...); ETHTOOL_STSO misses the
  // newer ones, and one left on still makes the peer skip NAPI.
  SpawnOptions opts;
  opts.in_child = [netns_path]() -> Status {
    if (!netns_path.empty()) OC_TRY(enterNetnsAt(netns_path));
    return okStatus();
  };
  auto r = runCapture({"ethtool", "-K", ifname, "tso", "off"}, opts);
  if (!r.ok()) return r.error().wrap("turn TSO off on " + ifname + " (is ethtool installed? scripts/setup.sh)");
  if (r->exit_code != 0) return makeError("ethtool -K " + ifname + " tso off: " + trim(r->err));
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
