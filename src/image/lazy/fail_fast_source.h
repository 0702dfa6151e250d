// Failing fast while a back end is down.
//  BackendHealth: whether one back end (a registry, a storage gateway) is
//    known to be down; shared by the sources of every layer it serves.
//  FailFastSource: a ChunkSource decorator. A fetch the back end could not
//    answer (ETIMEDOUT from the source, after its own fetch timeout) marks
//    the back end down; while it is down every fetch fails at once with EIO,
//    so the kernel's re-issued reads and reads of other uncached files do not
//    each wait another fetch timeout. One background probe per back end
//    re-fetches the chunk that failed every probe period; its success marks
//    the back end up and fetches go through again. A wrong chunk (EIO) is
//    the back end answering: it does not mark it down.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "image/lazy/chunk_source.h"

namespace offcore {

class BackendHealth {
 public:
  explicit BackendHealth(std::string name) : name_(std::move(name)) {}
  const std::string& name() const { return name_; }
  bool down() const { return down_.load(); }
  std::string lastError() const;
  void markDown(const std::string& why);  // logs the transition
  void markUp();
  // One prober at a time: true if the caller is now the prober.
  bool claimProbe() { return !probing_.exchange(true); }
  void releaseProbe() { probing_ = false; }

 private:
  const std::string name_;
  std::atomic<bool> down_{false};
  std::atomic<bool> probing_{false};
  mutable std::mutex mu_;
  std::string last_error_;
};

class FailFastSource final : public ChunkSource {
 public:
  FailFastSource(std::unique_ptr<ChunkSource> inner, std::shared_ptr<BackendHealth> health,
                 std::chrono::milliseconds probe_every = std::chrono::seconds(1));
  ~FailFastSource() override;  // stops its probe; waits at most one fetch

  uint64_t rawSize() const override { return inner_->rawSize(); }
  uint32_t chunkSize() const override { return inner_->chunkSize(); }
  Status fetch(uint64_t index, std::string& out) override;
  Status fetchRun(uint64_t first, uint64_t count, std::vector<std::string>& out) override;
  uint64_t bytesFetched() const override { return inner_->bytesFetched(); }
  std::string describe() const override { return inner_->describe(); }
  const BackendHealth& health() const { return *health_; }

 private:
  void startProbe(uint64_t index);
  void probeLoop(uint64_t index);

  std::unique_ptr<ChunkSource> inner_;
  std::shared_ptr<BackendHealth> health_;
  const std::chrono::milliseconds probe_every_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread probe_;
};

}  // namespace offcore
