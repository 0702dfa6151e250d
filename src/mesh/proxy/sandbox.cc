#include "mesh/proxy/sandbox.h"

#include <fcntl.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>

#include "base/files.h"

namespace offcore::mesh {

namespace {

Status mountOrError(const char* source, const std::string& target, const char* type, unsigned long flags,
                    const char* data) {
  if (::mount(source, target.c_str(), type, flags, data) != 0) {
    return errnoError(std::string("sandbox: mount ") + (type ? type : source ? source : "") + " on " + target);
  }
  return okStatus();
}

Status setAttr(const std::string& path, unsigned int flags, uint64_t set, uint64_t clear) {
  mount_attr attr{};
  attr.attr_set = set;
  attr.attr_clr = clear;
  if (::mount_setattr(AT_FDCWD, path.c_str(), flags, &attr, sizeof attr) != 0) {
    return errnoError("sandbox: mount_setattr " + path);
  }
  return okStatus();
}

// A tmpfs /dev with the character devices a process uses, nothing else.
Status minimalDev() {
  OC_TRY(mountOrError("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k"));
  struct Node {
    const char* name;
    unsigned major, minor;
  };
  for (Node n : {Node{"null", 1, 3}, Node{"zero", 1, 5}, Node{"full", 1, 7}, Node{"random", 1, 8},
                 Node{"urandom", 1, 9}, Node{"tty", 5, 0}}) {
    std::string path = std::string("/dev/") + n.name;
    if (::mknod(path.c_str(), S_IFCHR | 0666, makedev(n.major, n.minor)) != 0) {
      return errnoError("sandbox: mknod " + path);
    }
    ::chmod(path.c_str(), 0666);  // past the umask
  }
  for (auto [link, target] : {std::pair{"fd", "/proc/self/fd"}, std::pair{"stdin", "/proc/self/fd/0"},
                              std::pair{"stdout", "/proc/self/fd/1"}, std::pair{"stderr", "/proc/self/fd/2"}}) {
    if (::symlink(target, (std::string("/dev/") + link).c_str()) != 0) return errnoError("sandbox: /dev symlink");
  }
  return okStatus();
}

Status dropCapabilities(const std::vector<int>& keep) {
  uint64_t mask = 0;
  for (int cap : keep) mask |= uint64_t{1} << cap;
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) return errnoError("sandbox: clear ambient");
  // The bounding set first: dropping from it needs CAP_SETPCAP, which goes next.
  for (int cap = 0; cap < 64; ++cap) {
    if (mask & (uint64_t{1} << cap)) continue;
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) {
      return errnoError("sandbox: drop capability " + std::to_string(cap) + " from the bounding set");
    }
  }
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  for (int i = 0; i < 2; ++i) {
    auto word = static_cast<uint32_t>(mask >> (32 * i));
    data[i].effective = word;
    data[i].permitted = word;
    data[i].inheritable = 0;
  }
  if (::syscall(SYS_capset, &header, data) != 0) return errnoError("sandbox: capset");
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errnoError("sandbox: PR_SET_NO_NEW_PRIVS");
  return okStatus();
}

}  // namespace

std::vector<int> workerCapabilities(bool rt_priority) {
  std::vector<int> caps{CAP_NET_ADMIN, CAP_NET_RAW, CAP_NET_BIND_SERVICE};
  if (rt_priority) caps.push_back(CAP_SYS_NICE);
  return caps;
}

Status enterSandbox(const SandboxOptions& options) {
  if (!pathExists(options.ca_dir)) return makeError("sandbox: " + options.ca_dir + " does not exist");
  if (::unshare(CLONE_NEWNS) != 0) return errnoError("sandbox: unshare(CLONE_NEWNS) (needs CAP_SYS_ADMIN)");
  OC_TRY(mountOrError(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr));
  OC_TRY(minimalDev());
  for (const auto& path : options.writable) {
    OC_TRY(mountOrError(path.c_str(), path, nullptr, MS_BIND | MS_REC, nullptr));
  }
  // After the binds, so a CA directory below a writable path is covered too.
  OC_TRY(mountOrError("tmpfs", options.ca_dir, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                      "mode=0500,size=4k"));
  for (const auto& path : options.hidden_files) {
    if (path.empty() || !pathExists(path)) continue;
    OC_TRY(mountOrError("/dev/null", path, nullptr, MS_BIND, nullptr));
  }
  OC_TRY(setAttr("/", AT_RECURSIVE, MOUNT_ATTR_RDONLY, 0));
  for (const auto& path : options.writable) OC_TRY(setAttr(path, 0, 0, MOUNT_ATTR_RDONLY));
  return dropCapabilities(options.keep_caps);
}

Status lockUnixSockets() {
#if defined(__x86_64__)
  constexpr uint32_t kArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
  constexpr uint32_t kArch = AUDIT_ARCH_AARCH64;
#else
#error "lockUnixSockets: add this architecture's AUDIT_ARCH"
#endif
  constexpr uint32_t kEnosys = SECCOMP_RET_ERRNO | ENOSYS;
  constexpr uint32_t kEacces = SECCOMP_RET_ERRNO | EACCES;
  sock_filter filter[] = {
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kArch, 1, 0),
    BPF_STMT(BPF_RET | BPF_K, kEnosys),
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
#if defined(__x86_64__)
    BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, 0, 1),  // __X32_SYSCALL_BIT
    BPF_STMT(BPF_RET | BPF_K, kEnosys),
#endif
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_io_uring_setup, 0, 1),
    BPF_STMT(BPF_RET | BPF_K, kEnosys),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_socket, 0, 3),
    // The domain is an int: its low 32 bits (little-endian on both arches).
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, args[0])),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_UNIX, 0, 1),
    BPF_STMT(BPF_RET | BPF_K, kEacces),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog prog{static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
  if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog) != 0) {
    return errnoError("sandbox: seccomp filter (needs no_new_privs)");
  }
  return okStatus();
}

}  // namespace offcore::mesh
