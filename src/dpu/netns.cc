#include "dpu/netns.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "base/files.h"

namespace offcore {

std::string netnsPath(const std::string& name) { return "/run/netns/" + name; }

bool netnsExists(const std::string& name) { return pathExists(netnsPath(name)); }

bool isOffcoreNetnsName(const std::string& name) { return name.rfind("oc-", 0) == 0 || name.rfind("ocf-", 0) == 0; }

Status checkPodNetnsPath(const std::string& path) {
  struct statfs fs {};
  if (::statfs(path.c_str(), &fs) != 0) return errnoError("network namespace " + path);
  if (static_cast<unsigned long>(fs.f_type) != NSFS_MAGIC) {
    return makeError(path + " is not a namespace (expected a path like /var/run/netns/NAME or /proc/PID/ns/net)");
  }
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errnoError("open " + path);
  int type = ::ioctl(fd, NS_GET_NSTYPE);
  struct stat st {};
  int stat_rc = ::fstat(fd, &st);
  ::close(fd);
  if (type != CLONE_NEWNET) return makeError(path + " is a namespace, but not a network namespace");
  if (stat_rc != 0) return errnoError("stat " + path);
  auto same = [&](const std::string& other) {
    struct stat o {};
    return ::stat(other.c_str(), &o) == 0 && o.st_dev == st.st_dev && o.st_ino == st.st_ino;
  };
  if (same("/proc/1/ns/net")) return makeError(path + " is the machine's root network namespace, not a pod's");
  if (same("/proc/self/ns/net")) return makeError(path + " is the SoC's own network namespace, not a pod's");
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/run/netns", ec)) {
    std::string name = e.path().filename().string();
    if (isOffcoreNetnsName(name) && same(e.path().string())) {
      return makeError(path + " is offcore's own namespace " + name + ", not a pod's");
    }
  }
  return okStatus();
}

Status netnsAdd(const std::string& name) { return runChecked({"ip", "netns", "add", name}); }

Status netnsDelete(const std::string& name) {
  if (!netnsExists(name)) return okStatus();
  return runChecked({"ip", "netns", "delete", name});
}

static std::vector<std::string> ipArgv(const std::string& netns, std::vector<std::string> args) {
  std::vector<std::string> argv{"ip"};
  if (!netns.empty()) {
    argv.push_back("-n");
    argv.push_back(netns);
  }
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

Status ipCmd(const std::string& netns, std::vector<std::string> args) {
  return runChecked(ipArgv(netns, std::move(args)));
}

Result<std::string> ipOutput(const std::string& netns, std::vector<std::string> args) {
  auto argv = ipArgv(netns, std::move(args));
  OC_ASSIGN_OR_RETURN(ProcessOutput out, runCapture(argv));
  if (out.exit_code != 0) return makeError("'" + joinArgv(argv) + "' failed: " + trim(out.err));
  return out.out;
}

Status runInNetns(const std::string& netns, std::vector<std::string> argv, const std::string& stdin_data) {
  std::vector<std::string> full{"ip", "netns", "exec", netns};
  full.insert(full.end(), argv.begin(), argv.end());
  SpawnOptions opts;
  opts.stdin_data = stdin_data;
  return runChecked(full, opts);
}

bool linkExists(const std::string& netns, const std::string& ifname) {
  auto out = runCapture(ipArgv(netns, {"link", "show", "dev", ifname}));
  return out.ok() && out->exit_code == 0;
}

Status linkDelete(const std::string& netns, const std::string& ifname) {
  if (!netns.empty() && !netnsExists(netns)) return okStatus();
  if (!linkExists(netns, ifname)) return okStatus();
  return ipCmd(netns, {"link", "delete", "dev", ifname});
}

Status enterNetns(const std::string& name) {
  int fd = ::open(netnsPath(name).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errnoError("cannot open network namespace " + name);
  int rc = ::setns(fd, CLONE_NEWNET);
  int err = errno;
  ::close(fd);
  if (rc != 0) return errnoError("setns " + name, err);
  return okStatus();
}

Status enterNetnsAt(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errnoError("cannot open the network namespace handle " + path);
  int rc = ::setns(fd, CLONE_NEWNET);
  int err = errno;
  ::close(fd);
  if (rc != 0) return errnoError("setns " + path, err);
  return okStatus();
}

Result<LinkCounters> linkCounters(const std::string& netns, const std::string& ifname) {
  OC_ASSIGN_OR_RETURN(std::string text, ipOutput(netns, {"-s", "-j", "link", "show", "dev", ifname}));
  auto doc = nlohmann::json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_array() || doc.empty()) {
    return makeError("unexpected output from ip -s -j link show " + ifname);
  }
  const auto& s = doc[0]["stats64"];
  LinkCounters c;
  c.rx_packets = s["rx"].value("packets", 0ULL);
  c.tx_packets = s["tx"].value("packets", 0ULL);
  c.rx_bytes = s["rx"].value("bytes", 0ULL);
  c.tx_bytes = s["tx"].value("bytes", 0ULL);
  return c;
}

}  // namespace offcore
