// SyncWorker: the target's thread for commands that wait on the disk
// (Flush: fdatasync of the store's data and journal). A poll group hands
// such a command here and goes on serving its other commands; the result is
// posted back to the group's loop. One thread per target, tasks in order;
// what waits here is bounded by the queues' SQSIZE (each deferred command
// counts as outstanding until it is answered). See docs/CONCURRENCY.md.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace offcore::nvme {

class SyncWorker {
 public:
  SyncWorker() = default;
  ~SyncWorker() { stop(); }
  SyncWorker(const SyncWorker&) = delete;
  SyncWorker& operator=(const SyncWorker&) = delete;

  void start();
  // Runs `task` on the worker thread, after those submitted before it.
  // After stop() a task runs at once on the caller's thread.
  void submit(std::function<void()> task);
  // Runs what is queued, then joins the thread.
  void stop();

 private:
  void run();
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace offcore::nvme
