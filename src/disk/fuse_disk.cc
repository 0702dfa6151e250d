// The mount/unmount life cycle of a FuseDisk. The callbacks are in
// fuse_disk_ops.cc.
#include "disk/fuse_disk.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <vector>

#include "base/files.h"
#include "base/log.h"
#include "disk/fuse_disk_server.h"

namespace offcore {
namespace {

constexpr const char* kFusectl = "/sys/fs/fuse/connections";

void routeFuseLog(enum fuse_log_level level, const char* fmt, va_list ap) {
  char buf[512];
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  std::string msg = trim(buf);
  if (level <= FUSE_LOG_ERR) {
    spdlog::error("libfuse: {}", msg);
  } else if (level <= FUSE_LOG_NOTICE) {
    spdlog::info("libfuse: {}", msg);
  } else {
    spdlog::debug("libfuse: {}", msg);
  }
}

// libfuse splits -o on commas; keep a user-given fsname from adding options.
std::string sanitizeOption(std::string s) {
  for (char& c : s) {
    if (c == ',' || c == '\\' || c == ' ' || c == '\t' || c == '\n') c = '_';
  }
  return s;
}

std::string parentOf(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// Leaves path as a regular file that nothing is mounted on.
Status prepareMountpoint(const std::string& path, dev_t* file_dev) {
  std::string parent = parentOf(path);
  OC_TRY(makeDirs(parent));
  // Forced sync: a dead daemon's mount still answers plain stat() from the
  // attributes the kernel cached (for a day: kAttrTimeout in fuse_disk_ops.cc).
  struct statx stx {};
  if (::statx(AT_FDCWD, path.c_str(), AT_STATX_FORCE_SYNC, STATX_BASIC_STATS, &stx) != 0 && errno == ENOTCONN) {
    spdlog::warn("fuse disk {}: detaching the stale mount of a dead daemon", path);
    if (::umount2(path.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) != 0) {
      return errnoError("cannot detach the stale mount on " + path + " (umount -l it)");
    }
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno != ENOENT) return errnoError("cannot stat disk file " + path);
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno != EEXIST) return errnoError("cannot create disk file " + path);
    if (fd >= 0) ::close(fd);
    if (::stat(path.c_str(), &st) != 0) return errnoError("cannot stat disk file " + path);
  }
  if (!S_ISREG(st.st_mode)) {
    return makeError(path + " exists and is not a regular file; a disk mounts onto a file", EINVAL);
  }
  struct stat pst {};
  if (::stat(parent.c_str(), &pst) == 0 && pst.st_dev != st.st_dev) {
    return makeError(path + " is already a mount point; unmount it first (umount " + path + ")", EBUSY);
  }
  *file_dev = st.st_dev;
  return okStatus();
}

// Takes the file out of the mount namespace. A loop device is released
// asynchronously after `losetup -d`, so EBUSY is retried before going lazy.
Status detachFile(const std::string& path, std::chrono::milliseconds busy_timeout) {
  auto deadline = std::chrono::steady_clock::now() + busy_timeout;
  for (;;) {
    if (::umount2(path.c_str(), UMOUNT_NOFOLLOW) == 0) return okStatus();
    int err = errno;
    // Not mounted any more: someone (`dpu down`) detached it already.
    if (err == EINVAL || err == ENOENT) return okStatus();
    if (err != EBUSY) return errnoError("unmount " + path, err);
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (::umount2(path.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) != 0 && errno != EINVAL) {
    return errnoError("lazy unmount " + path);
  }
  return makeError("unmount " + path + ": still busy after " + std::to_string(busy_timeout.count()) +
                       " ms (detach loop devices and unmount filesystems on it first); detached "
                       "lazily and cut the connection, so remaining users get I/O errors",
                   EBUSY);
}

// True once the kernel side of the session is gone (unmounted or aborted):
// libfuse uses the same test before unmounting.
bool connectionClosed(fuse_session* se) {
  struct pollfd pfd {
    fuse_session_fd(se), 0, 0
  };
  return ::poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLERR);
}

// Cuts a connection whose superblock outlived our unmount (a lazy detach, or
// a copy of the mount in another mount namespace, e.g. a DPU domain's).
Status abortConnection(unsigned long conn_id) {
  std::string dir = std::string(kFusectl) + "/" + std::to_string(conn_id);
  if (!pathExists(dir)) {
    // fusectl is not mounted on machines without systemd; mount it the way
    // systemd would.
    struct stat a {
    }, b{};
    if (::stat(kFusectl, &a) == 0 && ::stat("/sys/fs/fuse", &b) == 0 && a.st_dev == b.st_dev &&
        ::mount("fusectl", kFusectl, "fusectl", 0, nullptr) != 0) {
      return errnoError(std::string("cannot mount fusectl on ") + kFusectl);
    }
  }
  return writeKernelFile(dir + "/abort", "1");
}

}  // namespace

fuse_session* newFuseSession(const std::string& options, FuseDisk::Server* server) {
  std::vector<std::string> words = {"offcore-disk", "-o", options};
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  fuse_lowlevel_ops ops = fuseDiskOps();
  fuse_session* se = fuse_session_new(&args, &ops, sizeof ops, server);
  fuse_opt_free_args(&args);
  return se;
}

void runLoop(std::shared_ptr<FuseDisk::Server> s) {
  if (s->device->completionFd() >= 0) {
    runPolledLoop(std::move(s));
    return;
  }
  // Signals belong to the owner process's loop (signalfd); libfuse workers
  // inherit this mask.
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  pthread_setname_np(pthread_self(), "oc-fuse-disk");
  // A polled predecessor (the connection is kept across restarts) may have
  // left the shared file description non-blocking: libfuse's workers block.
  int fd = fuse_session_fd(s->session);
  if (int fl = ::fcntl(fd, F_GETFL); fl >= 0 && (fl & O_NONBLOCK)) ::fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  fuse_loop_config* cfg = fuse_loop_cfg_create();
  // One /dev/fuse fd per worker: requests are spread without a shared
  // read() wake-up on one fd.
  fuse_loop_cfg_set_clone_fd(cfg, s->options.clone_fd ? 1 : 0);
  fuse_loop_cfg_set_max_threads(cfg, s->options.max_threads);
  fuse_loop_cfg_set_idle_threads(cfg, s->options.max_threads);
  int rc = fuse_session_loop_mt(s->session, cfg);
  fuse_loop_cfg_destroy(cfg);
  spdlog::debug("fuse disk {}: session loop ended ({})", s->path, rc);
}

// Stops the workers once the file is out of the namespace, then frees the
// session. The workers must keep answering until umount2 returned: the
// kernel may send them requests during the unmount.
Status stopServing(const std::shared_ptr<FuseDisk::Server>& s) {
  fuse_session_exit(s->session);
  if (s->wake_fd >= 0) (void)::eventfd_write(s->wake_fd, 1);  // a polled loop sleeps in epoll_wait
  Status result;
  if (!connectionClosed(s->session)) {
    result = abortConnection(s->conn_id);
    if (!connectionClosed(s->session)) {
      // Workers blocked in read() would never return: leave them (the
      // thread's closure keeps the Server alive) rather than hang here.
      s->loop.detach();
      return makeError("fuse disk " + s->path + ": cannot close the FUSE connection (" +
                           (result.ok() ? std::string("still open") : result.error().message) +
                           "); its workers stay until the kernel closes it",
                       EBUSY);
    }
  }
  s->loop.join();
  // Requests the device still holds answer into the session: wait for them
  // (bounded by the device's own I/O timeout) before freeing it.
  s->waitIdle();
  fuse_session_unmount(s->session);  // only closes the fd: the connection is gone
  fuse_session_destroy(s->session);
  s->session = nullptr;
  return okStatus();
}

Result<std::unique_ptr<FuseDisk>> FuseDisk::mount(const std::string& file_path, std::shared_ptr<BlockDevice> device,
                                                  const FuseDiskOptions& options) {
  const std::string what = "fuse disk " + file_path;
  if (!device) return makeError(what + ": no block device", EINVAL);
  uint32_t bs = device->blockSize();
  uint64_t size = device->sizeBytes();
  if (bs == 0 || size == 0 || size % bs != 0) {
    return makeError(what + ": device size " + std::to_string(size) + " is not a positive multiple of its block size " +
                         std::to_string(bs),
                     EINVAL);
  }
  if (options.max_threads == 0) return makeError(what + ": max_threads must be >= 1", EINVAL);
  if (::geteuid() != 0) return makeError(what + ": mounting needs root", EPERM);
  if (::access("/dev/fuse", R_OK | W_OK) != 0) {
    return errnoError(what + ": /dev/fuse is not usable (is the fuse module loaded?)");
  }
  dev_t file_dev = 0;
  if (Status st = prepareMountpoint(file_path, &file_dev); !st.ok()) return st.error().wrap(what);

  static std::once_flag log_once;
  std::call_once(log_once, [] { fuse_set_log_func(routeFuseLog); });

  auto server = std::make_shared<Server>(file_path, std::move(device), options);
  clock_gettime(CLOCK_REALTIME, &server->mounted_at);

  // default_permissions: the kernel checks `mode`, since allow_other lets
  // every user reach us. max_read must match conn->max_read (opInit).
  std::string opts = "fsname=" + sanitizeOption(options.fsname) +
                     ",subtype=offcore-disk,default_permissions,max_read=" + std::to_string(kFuseDiskMaxIo);
  if (options.allow_other) opts += ",allow_other";
  if (options.read_only) opts += ",ro";
  server->session = newFuseSession(opts, server.get());
  if (server->session == nullptr) {
    return makeError(what + ": libfuse refused the session options (see the log)", EINVAL);
  }
  if (fuse_session_mount(server->session, file_path.c_str()) != 0) {
    fuse_session_destroy(server->session);
    return makeError(what + ": mount failed (see the libfuse error in the log)", EIO);
  }
  server->loop = std::thread(runLoop, server);

  // The first stat waits for INIT, so once it shows our inode the disk is
  // being served. Its device number names the connection in fusectl.
  struct stat st {};
  bool answered = ::stat(file_path.c_str(), &st) == 0;
  int stat_errno = errno;
  if (!answered || st.st_dev == file_dev || static_cast<uint64_t>(st.st_size) != size) {
    Error err = !answered ? errnoError(what + ": the new mount does not answer", stat_errno)
                          : makeError(what + ": the new mount shows the wrong file", EIO);
    (void)::umount2(file_path.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW);
    (void)stopServing(server);
    return err;
  }
  server->conn_id = (static_cast<unsigned long>(major(st.st_dev)) << 20) | minor(st.st_dev);
  spdlog::info("fuse disk {}: serving {} bytes ({} B blocks){}", file_path, size, bs,
               options.read_only ? " read-only" : "");
  return std::unique_ptr<FuseDisk>(new FuseDisk(file_path, std::move(server)));
}

FuseDisk::~FuseDisk() {
  Status st = unmount();
  if (!st.ok()) spdlog::warn("{}", st.error().message);
}

Status FuseDisk::unmount() { return unmount(server_->options.busy_timeout); }

Status FuseDisk::unmount(std::chrono::milliseconds busy_timeout) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!mounted_) return okStatus();
  mounted_ = false;
  Status detached = detachFile(path_, busy_timeout);
  Status stopped = stopServing(server_);
  if (!detached.ok()) return detached;
  return stopped;
}

bool FuseDisk::mounted() const {
  std::lock_guard<std::mutex> lock(mu_);
  return mounted_;
}

bool FuseDisk::inUse() const { return server_->adopted || server_->open_files.load(std::memory_order_relaxed) > 0; }

FuseDiskStats FuseDisk::stats() const {
  const Server& s = *server_;
  FuseDiskStats out;
  out.reads = s.reads.load(std::memory_order_relaxed);
  out.writes = s.writes.load(std::memory_order_relaxed);
  out.flushes = s.flushes.load(std::memory_order_relaxed);
  out.discards = s.discards.load(std::memory_order_relaxed);
  out.write_zeroes = s.write_zeroes.load(std::memory_order_relaxed);
  out.bytes_read = s.bytes_read.load(std::memory_order_relaxed);
  out.bytes_written = s.bytes_written.load(std::memory_order_relaxed);
  out.errors = s.errors.load(std::memory_order_relaxed);
  out.read_modify_writes = s.io.readModifyWrites();
  return out;
}

}  // namespace offcore
