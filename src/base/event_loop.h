// EventLoop: one thread's epoll loop with fd watches, timers and a mailbox.
//
// Ownership rule (docs/CONCURRENCY.md): every object that lives on a loop is
// touched only by that loop's thread. Other threads talk to it with post(),
// which is the only thread-safe member.
#pragma once

#include <sys/epoll.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "base/result.h"

namespace offcore {

class EventLoop {
 public:
  using FdCallback = std::function<void(uint32_t events)>;
  using Task = std::function<void()>;
  using TimerId = uint64_t;
  using Clock = std::chrono::steady_clock;

  EventLoop();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Fails only if the kernel refuses the epoll or eventfd.
  Status init();

  Status watchFd(int fd, uint32_t events, FdCallback callback);
  Status modifyFd(int fd, uint32_t events);
  void unwatchFd(int fd);

  // One-shot timer; a callback may re-arm by calling addTimer again.
  TimerId addTimer(std::chrono::milliseconds delay, Task task);
  void cancelTimer(TimerId id);

  // Thread-safe: queues `task` to run on the loop thread.
  void post(Task task);

  // Runs until stop() (a stop before run() makes it return at once; each
  // stop ends one run). Returns the error that made the loop give up, if any.
  Status run();
  // Thread-safe.
  void stop();

  bool inLoopThread() const { return std::this_thread::get_id() == owner_; }

  // Busy polling: after its last event the loop keeps polling (epoll_wait
  // with no timeout) for up to `spin` before it sleeps, so an event that
  // comes soon costs no wake-up. For a thread with a cpu of its own (a
  // dedicated SoC core); the spin is cpu time spent waiting. Zero (the
  // default): sleep at once. Call before run().
  void setBusyPoll(std::chrono::microseconds spin) { busy_poll_ = spin; }

 private:
  void drainMailbox();
  int nextTimeoutMs() const;
  void fireDueTimers();

  std::chrono::microseconds busy_poll_{0};
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  bool running_ = false;
  std::thread::id owner_;
  std::unordered_map<int, FdCallback> fds_;
  std::multimap<Clock::time_point, TimerId> timer_order_;
  std::unordered_map<TimerId, std::pair<Clock::time_point, Task>> timers_;
  TimerId next_timer_id_ = 1;

  std::mutex mailbox_mutex_;
  std::deque<Task> mailbox_;
  bool stop_requested_ = false;  // guarded by mailbox_mutex_
};

}  // namespace offcore
