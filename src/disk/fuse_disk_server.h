// Internal: the state FUSE callbacks of a FuseDisk see, shared by the
// callbacks (fuse_disk_ops.cc) and the mount life cycle (fuse_disk.cc).
#pragma once

#define FUSE_USE_VERSION 312

#include <fuse_lowlevel.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "disk/buffer_pool.h"
#include "disk/byte_range_io.h"
#include "disk/fuse_disk.h"

namespace offcore {

// Requests up to 1 MiB each way: the most libfuse's default receive buffer
// takes (256 pages), and what a loop device with direct I/O sends in one piece.
inline constexpr unsigned kFuseDiskMaxIo = 1u << 20;

// Requests a polled loop hands to threads that may block (fuse_disk_loop.cc).
class FuseWorkQueue;

// True on a polled loop's thread: it must never wait for a completion, which
// only it can reap.
inline thread_local bool tl_fuse_poller = false;

struct FuseDisk::Server {
  Server(std::string p, std::shared_ptr<BlockDevice> dev, const FuseDiskOptions& opts)
      : path(std::move(p)), device(dev), io(dev), options(opts), size(dev->sizeBytes()), block_size(dev->blockSize()) {
    wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  }
  ~Server() {
    if (wake_fd >= 0) ::close(wake_fd);
  }
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  const std::string path;
  const std::shared_ptr<BlockDevice> device;
  ByteRangeIo io;
  const FuseDiskOptions options;
  const uint64_t size;
  const uint32_t block_size;
  uid_t uid = ::geteuid();
  gid_t gid = ::getegid();
  struct timespec mounted_at {};

  fuse_session* session = nullptr;
  std::thread loop;
  // Polled loop (a device with a completion fd): woken through wake_fd when
  // the session is told to exit; its blocking requests go to `workers`
  // (set while the loop runs).
  int wake_fd = -1;
  FuseWorkQueue* workers = nullptr;
  // adopt(): 0 = INIT not replayed yet, 1 = replayed, waiting for libfuse's
  // answer, 2 = done (readers may read the real fd).
  bool adopted = false;
  std::atomic<int> init_state{0};
  std::mutex init_mu;
  std::condition_variable init_cv;
  unsigned long conn_id = 0;  // the fusectl directory name (kernel dev_t)
  // OPENs minus RELEASEs this process answered: who still uses the file (a
  // mount or a loop device on it). Not known for opens made before adopt().
  std::atomic<int64_t> open_files{0};

  // Data buffers of reads and writes in flight (answered on the device's
  // completion thread); free ones kept up to 32 MiB.
  BufferPool buffers{32u << 20};
  // Requests handed to the device and not answered yet. The session is
  // destroyed only once this is back to zero (stopServing).
  std::mutex inflight_mu;
  std::condition_variable inflight_cv;
  uint64_t inflight = 0;
  void beginRequest() {
    std::lock_guard<std::mutex> lock(inflight_mu);
    ++inflight;
  }
  void endRequest() {
    std::lock_guard<std::mutex> lock(inflight_mu);
    if (--inflight == 0) inflight_cv.notify_all();
  }
  void waitIdle() {
    std::unique_lock<std::mutex> lock(inflight_mu);
    inflight_cv.wait(lock, [&] { return inflight == 0; });
  }

  std::atomic<uint64_t> reads{0}, writes{0}, flushes{0}, discards{0}, write_zeroes{0};
  std::atomic<uint64_t> bytes_read{0}, bytes_written{0}, errors{0};

  // The root inode: the disk file itself.
  struct stat attr() const {
    struct stat st {};
    st.st_ino = FUSE_ROOT_ID;
    st.st_mode = S_IFREG | (options.mode & 0777);
    st.st_nlink = 1;
    st.st_uid = uid;
    st.st_gid = gid;
    st.st_size = static_cast<off_t>(size);
    st.st_blksize = block_size;
    st.st_blocks = static_cast<blkcnt_t>(size / 512);
    st.st_atim = st.st_mtim = st.st_ctim = mounted_at;
    return st;
  }

  // Counts and logs (the first few, then every 1000th) a failed request;
  // returns the errno to answer it with.
  int fail(const char* op, uint64_t off, uint64_t len, const Error& e);
};

// The callbacks; userdata is the Server.
fuse_lowlevel_ops fuseDiskOps();

// A libfuse session with our callbacks and the given -o options.
fuse_session* newFuseSession(const std::string& options, FuseDisk::Server* server);

// The session loop (a thread per disk) and its shutdown (fuse_disk.cc).
// A device with a completion fd gets the polled loop instead of libfuse's
// multi-threaded one (fuse_disk_loop.cc).
void runLoop(std::shared_ptr<FuseDisk::Server> s);
void runPolledLoop(std::shared_ptr<FuseDisk::Server> s);
// Runs `job` on one of the polled loop's worker threads.
void postToWorkers(FuseDisk::Server& s, std::function<void()> job);
Status stopServing(const std::shared_ptr<FuseDisk::Server>& s);

}  // namespace offcore
