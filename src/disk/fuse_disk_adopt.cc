// FuseDisk::adopt: serve a FUSE connection an earlier process set up.
//
// The kernel answered INIT with the first server long ago, but a new libfuse
// session refuses every request until it has seen an INIT. So the session
// gets custom I/O (fuse_session_custom_io): its first read returns an INIT
// we build, its answer to that INIT is swallowed, and only then do readers
// touch the real /dev/fuse fd. After that the kernel is asked to resend the
// requests the dead server had read but not answered.
#include <linux/fuse.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "base/log.h"
#include "disk/fuse_disk_server.h"

namespace offcore {

namespace {

// Linux 6.9's notification code; older headers do not name it.
constexpr int32_t kNotifyResend = 7;
// The unique ID of the replayed INIT: never issued by the kernel (it uses
// even numbers counting up from 2).
constexpr uint64_t kReplayedInitUnique = 0x7fffffffffffff01ull;

ssize_t adoptedRead(int fd, void* buf, size_t len, void* userdata) {
  auto* s = static_cast<FuseDisk::Server*>(userdata);
  int expected = 0;
  if (s->init_state.compare_exchange_strong(expected, 1)) {
    struct {
      fuse_in_header h;
      fuse_init_in in;
    } msg{};
    if (len < sizeof msg) {
      errno = EINVAL;
      return -1;
    }
    msg.h.len = sizeof msg;
    msg.h.opcode = FUSE_INIT;
    msg.h.unique = kReplayedInitUnique;
    msg.in.major = FUSE_KERNEL_VERSION;
    msg.in.minor = FUSE_KERNEL_MINOR_VERSION;
    msg.in.max_readahead = 128 * 1024;
    msg.in.flags = FUSE_ASYNC_READ | FUSE_BIG_WRITES | FUSE_MAX_PAGES | FUSE_PARALLEL_DIROPS | FUSE_INIT_EXT;
    std::memcpy(buf, &msg, sizeof msg);
    return static_cast<ssize_t>(sizeof msg);
  }
  if (s->init_state.load() != 2) {
    std::unique_lock<std::mutex> lock(s->init_mu);
    s->init_cv.wait(lock, [&] { return s->init_state.load() == 2; });
  }
  return ::read(fd, buf, len);
}

ssize_t adoptedWritev(int fd, struct iovec* iov, int count, void* userdata) {
  auto* s = static_cast<FuseDisk::Server*>(userdata);
  if (count > 0 && iov[0].iov_len >= sizeof(fuse_out_header)) {
    const auto* oh = static_cast<const fuse_out_header*>(iov[0].iov_base);
    if (oh->unique == kReplayedInitUnique) {
      ssize_t total = 0;
      for (int i = 0; i < count; ++i) total += static_cast<ssize_t>(iov[i].iov_len);
      // Requests the dead server had read sit on this fd's processing list:
      // put them back in the queue for us.
      fuse_out_header resend{sizeof(fuse_out_header), kNotifyResend, 0};
      if (::write(fd, &resend, sizeof resend) < 0) {
        spdlog::warn("fuse disk {}: FUSE_NOTIFY_RESEND failed ({}); requests in flight at the restart fail", s->path,
                     std::strerror(errno));
      }
      {
        std::lock_guard<std::mutex> lock(s->init_mu);
        s->init_state = 2;
      }
      s->init_cv.notify_all();
      return total;
    }
  }
  return ::writev(fd, iov, count);
}

// The connection's fusectl id (the mount's device number), from
// mountinfo: a stat() of the file would hang if nobody serves it.
unsigned long connectionIdOf(const std::string& path) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  unsigned long id = 0;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string mount_id, parent, devno, root, point;
    f >> mount_id >> parent >> devno >> root >> point;
    unsigned maj = 0, min = 0;
    if (point == path && std::sscanf(devno.c_str(), "%u:%u", &maj, &min) == 2) id = (maj << 20) | min;
  }
  return id;  // the last (topmost) mount on the path
}

}  // namespace

Result<std::unique_ptr<FuseDisk>> FuseDisk::adopt(const std::string& file_path, int fd,
                                                  std::shared_ptr<BlockDevice> device, const FuseDiskOptions& options) {
  const std::string what = "fuse disk " + file_path + " (adopted)";
  if (!device || fd < 0) {
    if (fd >= 0) ::close(fd);
    return makeError(what + ": nothing to adopt", EINVAL);
  }
  auto server = std::make_shared<Server>(file_path, std::move(device), options);
  server->adopted = true;
  clock_gettime(CLOCK_REALTIME, &server->mounted_at);
  // The session options must match the first server's: libfuse refuses an
  // INIT whose max_read differs from its own (and ends the session).
  server->session = newFuseSession("max_read=" + std::to_string(kFuseDiskMaxIo), server.get());
  if (server->session == nullptr) {
    ::close(fd);
    return makeError(what + ": libfuse refused the session", EINVAL);
  }
  fuse_custom_io io{};
  io.writev = adoptedWritev;
  io.read = adoptedRead;
  if (fuse_session_custom_io(server->session, &io, fd) != 0) {
    fuse_session_destroy(server->session);
    ::close(fd);
    return makeError(what + ": libfuse refused the connection fd", EINVAL);
  }
  server->conn_id = connectionIdOf(file_path);
  server->loop = std::thread(runLoop, server);
  {
    std::unique_lock<std::mutex> lock(server->init_mu);
    if (!server->init_cv.wait_for(lock, std::chrono::seconds(5), [&] { return server->init_state.load() == 2; })) {
      lock.unlock();
      (void)stopServing(server);
      return makeError(what + ": libfuse did not take the replayed INIT", EIO);
    }
  }
  if (fuse_session_exited(server->session)) {
    // libfuse rejected the replayed INIT: cut the connection so its users
    // get errors instead of waiting for a server that will never answer.
    (void)stopServing(server);
    return makeError(what + ": libfuse ended the session after the replayed INIT (see the log)", EIO);
  }
  struct stat st {};
  if (::stat(file_path.c_str(), &st) != 0) {
    Error e = errnoError(what + ": the mount does not answer");
    (void)stopServing(server);
    return e;
  }
  spdlog::info("fuse disk {}: adopted the connection, serving {} bytes", file_path, server->size);
  return std::unique_ptr<FuseDisk>(new FuseDisk(file_path, std::move(server)));
}

int FuseDisk::connectionFd() const { return server_->session ? fuse_session_fd(server_->session) : -1; }

void FuseDisk::abandon() {
  std::lock_guard<std::mutex> lock(mu_);
  mounted_ = false;  // nothing to unmount: the connection outlives us
  if (server_->loop.joinable()) server_->loop.detach();
}

}  // namespace offcore
