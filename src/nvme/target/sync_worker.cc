#include "nvme/target/sync_worker.h"

#include <pthread.h>

namespace offcore::nvme {

void SyncWorker::start() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] {
    ::pthread_setname_np(::pthread_self(), "nvme-sync");
    run();
  });
}

void SyncWorker::submit(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (thread_.joinable() && !stopping_) {
      tasks_.push_back(std::move(task));
      cv_.notify_one();
      return;
    }
  }
  task();  // not running: the caller waits, as before there was a worker
}

void SyncWorker::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!thread_.joinable()) return;
    stopping_ = true;
    cv_.notify_one();
  }
  thread_.join();
  std::lock_guard<std::mutex> lock(mutex_);
  thread_ = std::thread();
}

void SyncWorker::run() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    cv_.wait(lock, [&] { return stopping_ || !tasks_.empty(); });
    if (tasks_.empty()) return;  // stopping, and everything ran
    auto task = std::move(tasks_.front());
    tasks_.pop_front();
    lock.unlock();
    task();
    lock.lock();
  }
}

}  // namespace offcore::nvme
