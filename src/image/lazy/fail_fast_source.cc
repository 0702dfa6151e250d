#include "image/lazy/fail_fast_source.h"

#include <cerrno>

#include "base/log.h"

namespace offcore {

std::string BackendHealth::lastError() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_error_;
}

void BackendHealth::markDown(const std::string& why) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    last_error_ = why;
  }
  if (!down_.exchange(true)) {
    spdlog::warn("back end {} is down ({}); uncached reads fail at once until it answers again", name_, why);
  }
}

void BackendHealth::markUp() {
  if (down_.exchange(false)) spdlog::info("back end {} answers again", name_);
}

FailFastSource::FailFastSource(std::unique_ptr<ChunkSource> inner, std::shared_ptr<BackendHealth> health,
                               std::chrono::milliseconds probe_every)
    : inner_(std::move(inner)), health_(std::move(health)), probe_every_(probe_every) {}

FailFastSource::~FailFastSource() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (probe_.joinable()) probe_.join();
}

Status FailFastSource::fetch(uint64_t index, std::string& out) {
  if (health_->down()) {
    startProbe(index);
    return makeError("chunk " + std::to_string(index) + " of " + describe() + ": the back end " + health_->name() +
                         " is down (" + health_->lastError() + "); reads fail at once until it answers again",
                     EIO);
  }
  Status s = inner_->fetch(index, out);
  if (s.ok()) {
    health_->markUp();  // an answer proves it up, whatever a concurrent fetch saw
    return s;
  }
  if (s.error().code == ETIMEDOUT) {
    health_->markDown(s.error().message);
    startProbe(index);
  }
  return s;
}

Status FailFastSource::fetchRun(uint64_t first, uint64_t count, std::vector<std::string>& out) {
  if (health_->down()) {
    startProbe(first);
    return makeError("chunks " + std::to_string(first) + "+" + std::to_string(count) + " of " + describe() +
                         ": the back end " + health_->name() + " is down (" + health_->lastError() +
                         "); reads fail at once until it answers again",
                     EIO);
  }
  Status s = inner_->fetchRun(first, count, out);
  if (s.ok()) {
    health_->markUp();
    return s;
  }
  if (s.error().code == ETIMEDOUT) {
    health_->markDown(s.error().message);
    startProbe(first);
  }
  return s;
}

void FailFastSource::startProbe(uint64_t index) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stop_ || !health_->claimProbe()) return;
  if (probe_.joinable()) probe_.join();  // a finished earlier probe of this source
  probe_ = std::thread([this, index] { probeLoop(index); });
}

void FailFastSource::probeLoop(uint64_t index) {
  std::string data;
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) break;
    }
    if (!health_->down()) break;
    Status s = inner_->fetch(index, data);
    if (s.ok()) {
      health_->markUp();
      break;
    }
    if (s.error().code != ETIMEDOUT) {  // it answered, if wrongly: not down
      health_->markUp();
      break;
    }
    std::unique_lock<std::mutex> lock(mu_);
    if (cv_.wait_for(lock, probe_every_, [&] { return stop_; })) break;
  }
  health_->releaseProbe();
}

}  // namespace offcore
