#include "nexus/late_replica.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>

#include "base/log.h"

namespace offcore::nexus {

namespace {

int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

Result<std::shared_ptr<LateReplica>> LateReplica::make(Opener open, uint64_t size, uint32_t block_size, bool polled) {
  std::shared_ptr<LateReplica> r(new LateReplica(std::move(open), size, block_size));
  if (polled) {
    // An epoll set the nexus can watch from the start: an eventfd that
    // never fires now, the device's own completion fd once it is open.
    r->epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    r->idle_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (r->epoll_fd_ < 0 || r->idle_fd_ < 0) return errnoError("late replica: epoll/eventfd");
    epoll_event ev{};
    ev.events = EPOLLIN;
    if (::epoll_ctl(r->epoll_fd_, EPOLL_CTL_ADD, r->idle_fd_, &ev) != 0) return errnoError("late replica: epoll_ctl");
  }
  return r;
}

LateReplica::~LateReplica() {
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
  if (idle_fd_ >= 0) ::close(idle_fd_);
}

Status LateReplica::notOpen() { return makeError("replica not connected (its storage host was down)", kBlockIo); }

BlockDevice* LateReplica::tryOpen() {
  if (BlockDevice* d = inner_.load(std::memory_order_acquire)) return d;
  std::lock_guard<std::mutex> l(open_mu_);
  if (BlockDevice* d = inner_.load(std::memory_order_acquire)) return d;
  if (nowMs() - last_try_ms_ < 1000) return nullptr;
  last_try_ms_ = nowMs();
  auto dev = open_();
  if (!dev.ok()) return nullptr;
  if ((*dev)->sizeBytes() != size_ || (*dev)->blockSize() != block_size_) {
    spdlog::error("late replica: opened, but it is {} bytes in {}-byte blocks, the others {} in {}: not used",
                  (*dev)->sizeBytes(), (*dev)->blockSize(), size_, block_size_);
    return nullptr;
  }
  int fd = (*dev)->completionFd();
  if ((fd >= 0) != (epoll_fd_ >= 0)) {
    spdlog::error("late replica: opened, but its completion mode differs from the other replicas': not used");
    return nullptr;
  }
  if (fd >= 0) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) return nullptr;
  }
  device_ = std::move(*dev);
  inner_.store(device_.get(), std::memory_order_release);
  spdlog::info("late replica: connected");
  return device_.get();
}

// The probe's read opens the device; the I/O paths never wait for an open.
Status LateReplica::read(uint64_t offset, void* buf, size_t len) {
  BlockDevice* d = tryOpen();
  return d ? d->read(offset, buf, len) : notOpen();
}

Status LateReplica::write(uint64_t offset, const void* buf, size_t len) {
  BlockDevice* d = inner_.load(std::memory_order_acquire);
  return d ? d->write(offset, buf, len) : notOpen();
}

Status LateReplica::flush() {
  BlockDevice* d = inner_.load(std::memory_order_acquire);
  return d ? d->flush() : notOpen();
}

Status LateReplica::discard(uint64_t offset, uint64_t len) {
  BlockDevice* d = inner_.load(std::memory_order_acquire);
  return d ? d->discard(offset, len) : notOpen();
}

Status LateReplica::writeZeroes(uint64_t offset, uint64_t len) {
  BlockDevice* d = inner_.load(std::memory_order_acquire);
  return d ? d->writeZeroes(offset, len) : notOpen();
}

void LateReplica::readAsync(uint64_t offset, void* buf, size_t len, IoCompletion* done) {
  BlockDevice* d = inner_.load(std::memory_order_acquire);
  if (!d) return done->done(notOpen());
  d->readAsync(offset, buf, len, done);
}

void LateReplica::writeAsync(uint64_t offset, const void* buf, size_t len, IoCompletion* done) {
  BlockDevice* d = inner_.load(std::memory_order_acquire);
  if (!d) return done->done(notOpen());
  d->writeAsync(offset, buf, len, done);
}

void LateReplica::reapCompletions() {
  if (BlockDevice* d = inner_.load(std::memory_order_acquire)) d->reapCompletions();
}

// Only the reaping thread plugs: an unplug goes to the device the plug did.
void LateReplica::plug() {
  plugged_ = inner_.load(std::memory_order_acquire);
  if (plugged_) plugged_->plug();
}

void LateReplica::unplug() {
  if (plugged_) plugged_->unplug();
  plugged_ = nullptr;
}

}  // namespace offcore::nexus
