// NvmeTcpHost's asynchronous path (readAsync/writeAsync): commands started
// without waiting, completed by a queue's reader thread or, in polled mode,
// by the owner's loop (reapCompletions). The synchronous path and the
// association's life cycle are in host.cc.
#include <sys/epoll.h>
#include <sys/eventfd.h>

#include <algorithm>

#include "nvme/host/fabrics.h"
#include "nvme/host/host.h"

namespace offcore::nvme {

// A read or write cut into several commands: done once all of them are,
// with the first error.
struct NvmeTcpHost::AsyncSplit final : IoCompletion {
  AsyncSplit(int n, IoCompletion* parent) : remaining(n), parent(parent) {}
  void done(Status status) override {
    if (!status.ok()) {
      std::lock_guard<std::mutex> lock(mu);
      if (first_error.ok()) first_error = std::move(status);
    }
    if (remaining.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    parent->done(std::move(first_error));
    delete this;
  }
  std::atomic<int> remaining;
  IoCompletion* const parent;
  std::mutex mu;
  Status first_error;
};

// One asynchronous command, from its start until its IoCompletion ran.
struct NvmeTcpHost::AsyncIo final : HostQueueWaiter {
  NvmeTcpHost* host = nullptr;
  Sqe sqe;
  const uint8_t* out = nullptr;
  uint8_t* in = nullptr;
  size_t len = 0;
  bool is_write = false;
  std::chrono::steady_clock::time_point deadline;  // io_timeout from the start
  IoCompletion* done = nullptr;

  size_t outLen() const { return is_write ? len : 0; }
  size_t inLen() const { return is_write ? 0 : len; }

  void finish(Status status) {
    if (status.ok()) {
      (is_write ? host->stats_.writes : host->stats_.reads).fetch_add(1, std::memory_order_relaxed);
    }
    IoCompletion* d = done;
    delete this;
    d->done(std::move(status));
  }

  void completed(const Cqe* cqe, const Error* lost) override {
    if (cqe != nullptr) {
      if (cqe->status() == kScSuccess) {
        finish(okStatus());
        return;
      }
      host->stats_.errors.fetch_add(1, std::memory_order_relaxed);
      finish(blockErrorForStatus(cqe->status(), is_write ? "write" : "read"));
      return;
    }
    // The queue was lost with the command on it: retry on the next
    // association, the way the synchronous path does.
    (void)lost;
    if (!host->closing_) host->markBroken();
    host->retryLater(this);
  }
};

void NvmeTcpHost::readAsync(uint64_t offset, void* buf, size_t len, IoCompletion* done) {
  startAsync(false, offset, static_cast<uint8_t*>(buf), nullptr, len, done);
}

void NvmeTcpHost::writeAsync(uint64_t offset, const void* buf, size_t len, IoCompletion* done) {
  startAsync(true, offset, nullptr, static_cast<const uint8_t*>(buf), len, done);
}

void NvmeTcpHost::startAsync(bool is_write, uint64_t offset, uint8_t* in, const uint8_t* out, size_t len,
                             IoCompletion* done) {
  if (Status range = checkRange(offset, len); !range.ok()) {
    done->done(std::move(range));
    return;
  }
  if (len == 0) {
    done->done(okStatus());
    return;
  }
  auto deadline = std::chrono::steady_clock::now() + options_.io_timeout;
  const size_t max = max_transfer_.load(std::memory_order_relaxed);
  size_t pieces = (len + max - 1) / max;
  IoCompletion* target = pieces > 1 ? new AsyncSplit(static_cast<int>(pieces), done) : done;
  for (size_t done_bytes = 0; done_bytes < len;) {
    size_t n = std::min<size_t>(len - done_bytes, max);
    auto* io = new AsyncIo;
    io->host = this;
    io->sqe = rwSqe(is_write, offset + done_bytes, n);
    io->is_write = is_write;
    io->out = out != nullptr ? out + done_bytes : nullptr;
    io->in = in != nullptr ? in + done_bytes : nullptr;
    io->len = n;
    io->deadline = deadline;
    io->done = target;
    done_bytes += n;
    startCommand(io);
  }
}

void NvmeTcpHost::startCommand(AsyncIo* io) {
  std::shared_ptr<HostQueue> q;
  {
    std::lock_guard<std::mutex> lock(state_mutex_);
    if (connected_ && !closing_ && !failed_ && !io_.empty()) q = io_[next_queue_++ % io_.size()];
  }
  if (!q) {
    retryLater(io);  // the synchronous path waits for the association (or fails) by the rules
    return;
  }
  auto command_deadline = std::min(io->deadline, std::chrono::steady_clock::now() + options_.command_timeout);
  Status sent = q->submitAsync(io->sqe, io->out, io->outLen(), io->in, io->inLen(), command_deadline, io);
  if (sent.ok()) return;
  markBroken();
  retryLater(io);
}

void NvmeTcpHost::retryLater(AsyncIo* io) {
  {
    std::lock_guard<std::mutex> lock(retry_mutex_);
    ++retrying_;
  }
  std::thread([this, io] {
    Status st = ioCommand(io->sqe, io->out, io->outLen(), io->in, io->inLen(), io->is_write, io->deadline);
    if (retried_fd_ < 0) {
      io->finish(std::move(st));
      std::lock_guard<std::mutex> lock(retry_mutex_);
      if (--retrying_ == 0) retry_cv_.notify_all();
      return;
    }
    std::lock_guard<std::mutex> lock(retry_mutex_);
    retried_.emplace_back(io, std::move(st));
    (void)::eventfd_write(retried_fd_, 1);
    if (--retrying_ == 0) retry_cv_.notify_all();
  }).detach();
}

void NvmeTcpHost::finishRetried() {
  std::vector<std::pair<AsyncIo*, Status>> done;
  {
    std::lock_guard<std::mutex> lock(retry_mutex_);
    done.swap(retried_);
  }
  for (auto& [io, st] : done) io->finish(std::move(st));
}

void NvmeTcpHost::plug() {
  if (poll_fd_ < 0 || !corked_.empty()) return;
  {
    std::lock_guard<std::mutex> lock(state_mutex_);
    corked_ = io_;
  }
  for (auto& q : corked_) q->cork();
}

void NvmeTcpHost::unplug() {
  for (auto& q : corked_) q->uncork();
  corked_.clear();
}

void NvmeTcpHost::reapCompletions() {
  if (poll_fd_ < 0) return;
  uint64_t changed = queues_changed_.load();
  if (changed != poller_seen_) {
    std::lock_guard<std::mutex> lock(state_mutex_);
    poller_queues_ = io_;
    poller_queues_.insert(poller_queues_.end(), draining_.begin(), draining_.end());
    poller_seen_ = queues_changed_.load();
  }
  epoll_event events[16];
  int n = ::epoll_wait(poll_fd_, events, 16, 0);
  for (int i = 0; i < n; ++i) {
    int fd = events[i].data.fd;
    if (fd == retried_fd_) {
      eventfd_t v;
      (void)::eventfd_read(retried_fd_, &v);
      finishRetried();
      continue;
    }
    std::shared_ptr<HostQueue> q;
    for (auto& candidate : poller_queues_) {
      if (candidate->fd() == fd) q = candidate;
    }
    if (!q) {
      (void)::epoll_ctl(poll_fd_, EPOLL_CTL_DEL, fd, nullptr);  // a queue already gone
      continue;
    }
    if (q->pollRead()) continue;
    // Dead: its commands were failed to their waiters (retried on the next
    // association). Stop watching it, and let the reconnect thread know.
    (void)::epoll_ctl(poll_fd_, EPOLL_CTL_DEL, fd, nullptr);
    bool current = false;
    {
      std::lock_guard<std::mutex> lock(state_mutex_);
      current = std::find(io_.begin(), io_.end(), q) != io_.end();
      std::erase(draining_, q);
      queues_changed_++;
    }
    if (current && !closing_) markBroken();
  }
}

}  // namespace offcore::nvme
