// The polled loop of a FuseDisk whose device completes on the caller's
// thread (BlockDevice::completionFd: the NVMe/TCP initiator in polled mode).
// One thread reads /dev/fuse (non-blocking, in batches), starts reads and
// writes on the device and reaps their completions, so a request costs no
// hand-off between threads. Requests that may block (fsync, fallocate,
// unaligned I/O, a write whose blocks a read-modify-write holds) go to two
// worker threads: they may wait for completions, which this loop reaps.
#include <fcntl.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <vector>

#include "base/log.h"
#include "disk/fuse_disk_server.h"

namespace offcore {

class FuseWorkQueue {
 public:
  explicit FuseWorkQueue(int threads) {
    for (int i = 0; i < threads; ++i) {
      threads_.emplace_back([this] {
        pthread_setname_np(pthread_self(), "oc-fuse-sync");
        run();
      });
    }
  }
  ~FuseWorkQueue() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  void post(std::function<void()> job) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      jobs_.push_back(std::move(job));
      ++busy_;
    }
    cv_.notify_one();
  }
  bool idle() {
    std::lock_guard<std::mutex> lock(mu_);
    return busy_ == 0;
  }

 private:
  void run() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopping, nothing left
      auto job = std::move(jobs_.front());
      jobs_.pop_front();
      lock.unlock();
      job();
      lock.lock();
      --busy_;
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  size_t busy_ = 0;  // queued + running
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

void postToWorkers(FuseDisk::Server& s, std::function<void()> job) { s.workers->post(std::move(job)); }

namespace {

constexpr int kBatch = 64;  // FUSE requests read per turn before looking at completions

// Whether a request can run on the loop thread: it must not wait for a
// device completion (only the loop reaps them).
bool runsOnLoop(const fuse_buf& buf, size_t len, uint64_t block) {
  if (len < sizeof(fuse_in_header)) return true;  // libfuse answers the malformed request
  const auto* in = static_cast<const fuse_in_header*>(buf.mem);
  const char* arg = static_cast<const char*>(buf.mem) + sizeof(fuse_in_header);
  switch (in->opcode) {
    case FUSE_READ: {
      if (len < sizeof(fuse_in_header) + sizeof(fuse_read_in)) return true;
      fuse_read_in r;
      std::memcpy(&r, arg, sizeof r);
      return r.offset % block == 0 && r.size % block == 0;
    }
    case FUSE_WRITE: {
      if (len < sizeof(fuse_in_header) + sizeof(fuse_write_in)) return true;
      fuse_write_in w;
      std::memcpy(&w, arg, sizeof w);
      return w.offset % block == 0 && w.size % block == 0;
    }
    case FUSE_FSYNC:
    case FUSE_FSYNCDIR:
    case FUSE_FALLOCATE: return false;
    default: return true;  // attributes, open, release, statfs, init: answered at once
  }
}

}  // namespace

void runPolledLoop(std::shared_ptr<FuseDisk::Server> s) {
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  pthread_setname_np(pthread_self(), "oc-fuse-disk");
  tl_fuse_poller = true;
  fuse_session* se = s->session;
  const int ffd = fuse_session_fd(se);
  const int cfd = s->device->completionFd();
  if (int fl = ::fcntl(ffd, F_GETFL); fl >= 0) ::fcntl(ffd, F_SETFL, fl | O_NONBLOCK);
  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  auto watch = [ep](int fd) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    return ::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0;
  };
  if (ep < 0 || !watch(ffd) || !watch(cfd) || !watch(s->wake_fd)) {
    spdlog::error("fuse disk {}: cannot set up the polled loop: {}", s->path, std::strerror(errno));
    if (ep >= 0) ::close(ep);
    fuse_session_exit(se);
    return;
  }
  FuseWorkQueue workers(2);
  s->workers = &workers;
  fuse_buf fbuf{};
  bool serving = true;
  bool fuse_ready = true;  // an adopted session's first request (a replayed INIT) is not on the fd
  for (;;) {
    if (serving && fuse_session_exited(se)) {
      serving = false;
      (void)::epoll_ctl(ep, EPOLL_CTL_DEL, ffd, nullptr);
    }
    if (!serving) {
      std::lock_guard<std::mutex> lock(s->inflight_mu);
      // Stop once nothing is owed: the device's answers go into the session.
      if (s->inflight == 0 && workers.idle()) break;
    }
    // What this turn starts leaves together at unplug() (one send per queue).
    s->device->plug();
    if (serving && fuse_ready) {
      fuse_ready = false;
      for (int i = 0; i < kBatch; ++i) {
        int res = fuse_session_receive_buf(se, &fbuf);
        if (res == -EAGAIN) break;
        if (res == -EINTR) continue;
        if (res <= 0) {  // unmounted or aborted (ENODEV): the session has ended
          fuse_session_exit(se);
          break;
        }
        size_t len = static_cast<size_t>(res);
        if (runsOnLoop(fbuf, len, s->block_size)) {
          fuse_session_process_buf(se, &fbuf);
        } else {
          auto copy =
              std::make_shared<std::vector<char>>(static_cast<char*>(fbuf.mem), static_cast<char*>(fbuf.mem) + len);
          workers.post([se, copy] {
            fuse_buf b{};
            b.size = copy->size();
            b.mem = copy->data();
            fuse_session_process_buf(se, &b);
          });
        }
        if (i == kBatch - 1) fuse_ready = true;  // more may be waiting: come back after the completions
      }
      // Answers to what earlier turns started (this turn's leave at unplug()).
      s->device->reapCompletions();
    }
    s->device->unplug();
    epoll_event events[4];
    int timeout = fuse_ready ? 0 : (serving ? -1 : 20);
    int n = ::epoll_wait(ep, events, 4, timeout);
    s->device->plug();  // completions start backlogged commands and answer R2Ts
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == cfd) {
        s->device->reapCompletions();
      } else if (fd == ffd) {
        fuse_ready = true;
      } else if (fd == s->wake_fd) {
        eventfd_t v;
        (void)::eventfd_read(s->wake_fd, &v);
      }
    }
    if (!serving) s->device->reapCompletions();  // draining: answers may come without a wake-up we wait for
    s->device->unplug();
  }
  s->workers = nullptr;
  std::free(fbuf.mem);
  ::close(ep);
  spdlog::debug("fuse disk {}: polled loop ended", s->path);
}

}  // namespace offcore
