#include "base/event_loop.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "base/assert.h"

namespace offcore {

namespace {
// The loop run() is executing on this thread (thread-local: post() may read
// it from any thread without a race).
thread_local EventLoop* t_running = nullptr;
}  // namespace

EventLoop::EventLoop() : owner_(std::this_thread::get_id()) {}

EventLoop::~EventLoop() {
  if (wake_fd_ >= 0) ::close(wake_fd_);
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
}

Status EventLoop::init() {
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) return errnoError("epoll_create1");
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) return errnoError("eventfd");
  return watchFd(wake_fd_, EPOLLIN, [this](uint32_t) {
    uint64_t n;
    while (::read(wake_fd_, &n, sizeof n) > 0) {}
    drainMailbox();
  });
}

Status EventLoop::watchFd(int fd, uint32_t events, FdCallback callback) {
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) return errnoError("epoll_ctl add");
  fds_[fd] = std::move(callback);
  return okStatus();
}

Status EventLoop::modifyFd(int fd, uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev) != 0) return errnoError("epoll_ctl mod");
  return okStatus();
}

void EventLoop::unwatchFd(int fd) {
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  fds_.erase(fd);
}

EventLoop::TimerId EventLoop::addTimer(std::chrono::milliseconds delay, Task task) {
  OC_ASSERT(inLoopThread(), "addTimer off the loop thread");
  TimerId id = next_timer_id_++;
  auto due = Clock::now() + delay;
  timers_.emplace(id, std::make_pair(due, std::move(task)));
  timer_order_.emplace(due, id);
  return id;
}

void EventLoop::cancelTimer(TimerId id) {
  auto it = timers_.find(id);
  if (it == timers_.end()) return;
  auto range = timer_order_.equal_range(it->second.first);
  for (auto o = range.first; o != range.second; ++o) {
    if (o->second == id) {
      timer_order_.erase(o);
      break;
    }
  }
  timers_.erase(it);
}

void EventLoop::post(Task task) {
  {
    std::lock_guard<std::mutex> lock(mailbox_mutex_);
    mailbox_.push_back(std::move(task));
  }
  // The loop's own thread drains the mailbox at the end of the turn (run());
  // only another thread has to wake it. A proxy posts several tasks per
  // request: an eventfd write and read for each cost a tenth of its CPU.
  if (t_running == this) return;
  uint64_t one = 1;
  ssize_t n = ::write(wake_fd_, &one, sizeof one);
  (void)n;  // EAGAIN means the counter is already non-zero: a wake is pending
}

void EventLoop::stop() {
  {
    std::lock_guard<std::mutex> lock(mailbox_mutex_);
    stop_requested_ = true;
  }
  uint64_t one = 1;
  ssize_t n = ::write(wake_fd_, &one, sizeof one);
  (void)n;
}

void EventLoop::drainMailbox() {
  std::deque<Task> tasks;
  {
    std::lock_guard<std::mutex> lock(mailbox_mutex_);
    tasks.swap(mailbox_);
    if (stop_requested_) running_ = false;
  }
  for (auto& t : tasks) t();
}

int EventLoop::nextTimeoutMs() const {
  if (timer_order_.empty()) return -1;
  auto delta = timer_order_.begin()->first - Clock::now();
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(delta).count();
  return ms < 0 ? 0 : static_cast<int>(ms);
}

void EventLoop::fireDueTimers() {
  auto now = Clock::now();
  while (!timer_order_.empty() && timer_order_.begin()->first <= now) {
    TimerId id = timer_order_.begin()->second;
    timer_order_.erase(timer_order_.begin());
    auto it = timers_.find(id);
    if (it == timers_.end()) continue;
    Task task = std::move(it->second.second);
    timers_.erase(it);
    task();
  }
}

Status EventLoop::run() {
  owner_ = std::this_thread::get_id();
  running_ = true;
  {
    std::lock_guard<std::mutex> lock(mailbox_mutex_);
    if (stop_requested_) running_ = false;
  }
  std::vector<epoll_event> events(64);
  EventLoop* outer = t_running;  // a loop may run inside another's callback (tests)
  t_running = this;
  auto last_event = Clock::now();
  while (running_) {
    bool queued = false;
    {
      std::lock_guard<std::mutex> lock(mailbox_mutex_);
      queued = !mailbox_.empty();
    }
    int timeout = queued ? 0 : nextTimeoutMs();
    if (timeout != 0 && busy_poll_.count() > 0 && Clock::now() - last_event < busy_poll_) timeout = 0;
    int n = ::epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), timeout);
    if (n > 0 && busy_poll_.count() > 0) last_event = Clock::now();
    if (n < 0) {
      if (errno == EINTR) continue;
      t_running = outer;
      return errnoError("epoll_wait");
    }
    for (int i = 0; i < n && running_; ++i) {
      auto it = fds_.find(events[i].data.fd);
      if (it == fds_.end()) continue;  // unwatched by an earlier callback this round
      FdCallback cb = it->second;      // copy: the callback may unwatch itself
      cb(events[i].events);
    }
    fireDueTimers();
    // Tasks the loop's own callbacks posted this turn: after every callback
    // returned, before the next wait.
    if (running_) drainMailbox();
  }
  t_running = outer;
  // The stop request is used up: the loop can run again (a test, or a
  // caller that drives it in phases).
  std::lock_guard<std::mutex> lock(mailbox_mutex_);
  stop_requested_ = false;
  return okStatus();
}

}  // namespace offcore
