// The worker's sandbox, entered by a forked child (it changes the whole
// process for good); the child reports what it could still do.
#include "mesh/proxy/sandbox.h"

#include <dirent.h>
#include <gtest/gtest.h>
#include <linux/capability.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <string>

#include "base/files.h"

namespace offcore::mesh {
namespace {

// Runs `body` in a child; its returned string ("" = fine) comes back.
std::string inChild(const std::function<std::string()>& body) {
  int p[2];
  if (::pipe(p) != 0) return "pipe";
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(p[0]);
    std::string out = body();
    (void)!::write(p[1], out.data(), out.size());
    ::_exit(0);
  }
  ::close(p[1]);
  std::string out;
  char buf[512];
  for (ssize_t n; (n = ::read(p[0], buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
  ::close(p[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) out += " (child exited badly)";
  return out;
}

std::string statusLine(const std::string& key) {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key + ":", 0) == 0) return line.substr(key.size() + 1);
  }
  return "";
}

class SandboxTest : public testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (mount namespace, capabilities)";
    char tmpl[] = "/tmp/offcore-sandbox-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ASSERT_TRUE(makeDirs(dir_ + "/cluster/mesh/ca").ok());
    ASSERT_TRUE(makeDirs(dir_ + "/run").ok());
    ASSERT_TRUE(writeFileAtomic(dir_ + "/cluster/mesh/ca/ca.key", "secret", 0600).ok());
    ASSERT_TRUE(writeFileAtomic(dir_ + "/cluster/state.json", "{}", 0644).ok());
    ASSERT_TRUE(writeFileAtomic(dir_ + "/mesh-ca.password", "etcd-secret\n", 0600).ok());
  }
  void TearDown() override {
    if (!dir_.empty()) (void)removeTree(dir_);
  }
  std::string dir_;
};

TEST_F(SandboxTest, HidesTheCaKeepsOnlyTheRunDirWritableAndDropsCapabilities) {
  std::string problems = inChild([&]() -> std::string {
    SandboxOptions o;
    o.ca_dir = dir_ + "/cluster/mesh/ca";
    o.writable = {dir_ + "/run"};
    o.keep_caps = workerCapabilities(false);
    o.hidden_files = {dir_ + "/mesh-ca.password", dir_ + "/not-there"};
    if (auto s = enterSandbox(o); !s.ok()) return s.error().message;
    std::string out;
    if (readFile(dir_ + "/cluster/mesh/ca/ca.key").ok()) out += "ca.key readable; ";
    if (readFile(dir_ + "/mesh-ca.password").valueOr("").find("secret") != std::string::npos) {
      out += "the mesh CA's etcd password readable; ";
    }
    if (::umount2((dir_ + "/mesh-ca.password").c_str(), MNT_DETACH) == 0)
      out += "the password mask could be unmounted; ";
    if (writeFileAtomic(dir_ + "/cluster/state.json", "{\"x\":1}", 0644).ok()) out += "cluster state writable; ";
    if (!writeFileAtomic(dir_ + "/run/mesh-access.log", "line\n", 0600).ok()) out += "run dir not writable; ";
    if (DIR* d = ::opendir("/dev")) {
      while (dirent* e = ::readdir(d)) {
        struct stat st {};
        std::string path = std::string("/dev/") + e->d_name;
        if (::stat(path.c_str(), &st) == 0 && S_ISBLK(st.st_mode)) out += "block device " + path + "; ";
      }
      ::closedir(d);
    }
    for (const char* dev : {"/dev/null", "/dev/urandom"}) {
      if (!pathExists(dev)) out += std::string("no ") + dev + "; ";
    }
    std::string bnd = statusLine("CapBnd"), eff = statusLine("CapEff"), prm = statusLine("CapPrm");
    for (const auto& set : {bnd, eff, prm}) {
      uint64_t bits = std::stoull(set, nullptr, 16);
      if (bits != ((1ull << CAP_NET_ADMIN) | (1ull << CAP_NET_RAW) | (1ull << CAP_NET_BIND_SERVICE))) {
        out += "capabilities" + set + "; ";
      }
    }
    if (::prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1) out += "no no_new_privs; ";
    // The sandbox cannot be undone from inside.
    if (::umount2(o.ca_dir.c_str(), MNT_DETACH) == 0) out += "the CA mask could be unmounted; ";
    return out;
  });
  EXPECT_EQ(problems, "");
  // Outside, nothing changed.
  EXPECT_TRUE(readFile(dir_ + "/cluster/mesh/ca/ca.key").ok());
  EXPECT_EQ(readFile(dir_ + "/mesh-ca.password").valueOr(""), "etcd-secret\n");
}

TEST_F(SandboxTest, LockUnixSocketsRefusesNewUnixSocketsOnly) {
  std::string problems = inChild([&]() -> std::string {
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM, 0, pair) != 0) return "socketpair before";
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return "no_new_privs";
    if (auto s = lockUnixSockets(); !s.ok()) return s.error().message;
    std::string out;
    int u = ::socket(AF_UNIX, SOCK_STREAM, 0);
    if (u >= 0 || errno != EACCES) out += "socket(AF_UNIX) allowed; ";
    int i = ::socket(AF_INET, SOCK_STREAM, 0);
    if (i < 0) out += "socket(AF_INET) refused; ";
    if (::write(pair[0], "x", 1) != 1) out += "existing socketpair broken; ";
    return out;
  });
  EXPECT_EQ(problems, "");
  // Outside, nothing changed.
  int u = ::socket(AF_UNIX, SOCK_STREAM, 0);
  EXPECT_GE(u, 0);
  ::close(u);
}

}  // namespace
}  // namespace offcore::mesh
