// The queue thread of one vring (see vring.h).
#include "virt/vhost/vring.h"

#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "base/log.h"

namespace offcore::virt {
namespace {

// Chains served before the guest is told, so a deep queue still gets
// completions while the thread keeps draining.
constexpr uint32_t kNotifyBatch = 32;

void signalFd(int fd) {
  if (fd < 0) return;
  const uint64_t one = 1;
  // The fd is non-blocking (Session::setVringFd): EAGAIN means the counter
  // is full, which already means "signalled".
  [[maybe_unused]] ssize_t n = ::write(fd, &one, sizeof(one));
}

// A vring base for the log: split, the avail index; packed, both positions
// with their wrap counters.
std::string describeBase(uint32_t base, bool packed) {
  if (!packed) return fmt::format("avail index {}", base);
  return fmt::format("avail {} wrap {}, used {} wrap {}", base & 0x7fff, (base >> 15) & 1, (base >> 16) & 0x7fff,
                     base >> 31);
}

}  // namespace

Status Vring::start(const GuestMemory& mem, DirtyLog* log, uint64_t features) {
  if (running()) return okStatus();
  VirtQueueConfig cfg;
  cfg.size = static_cast<uint16_t>(num);
  cfg.addrs = addrs;
  cfg.lastAvailIdx = base;
  cfg.eventIdx = (features >> VIRTIO_RING_F_EVENT_IDX) & 1;
  cfg.indirect = (features >> VIRTIO_RING_F_INDIRECT_DESC) & 1;
  cfg.packed = (features >> VIRTIO_F_RING_PACKED) & 1;
  if (inflight != nullptr && cfg.packed != inflightPacked) {
    // The area was sized before the ring type was known (a front end that
    // asks GET_INFLIGHT_FD before SET_FEATURES): it stays mapped (the front
    // end owns it) but this queue does not write it.
    spdlog::warn(
        "vhost-user: queue {} is {} but its inflight region is laid out for {} rings; in-flight requests are not "
        "tracked, so a back-end restart may lose them",
        index_, cfg.packed ? "packed" : "split", inflightPacked ? "packed" : "split");
  } else if (inflight != nullptr && num == inflightQueueSize) {
    cfg.inflight = inflight;
  } else if (inflight != nullptr) {
    spdlog::warn(
        "vhost-user: queue {} has {} descriptors but its inflight region {}; in-flight requests are not "
        "tracked",
        index_, num, inflightQueueSize);
  }
  auto vq = VirtQueue::create(mem, cfg, log);
  if (!vq.ok()) return vq.error().wrap("queue " + std::to_string(index_));
  vq_ = std::move(*vq);
  if (vq_->resubmitted() > 0) {
    spdlog::warn("vhost-user: queue {} resubmits {} in-flight requests left by the previous back end", index_,
                 vq_->resubmitted());
  }
  int sfd = ::eventfd(0, EFD_CLOEXEC);
  if (sfd < 0) {
    vq_.reset();
    return errnoError("queue " + std::to_string(index_) + ": eventfd");
  }
  stopFd_.reset(sfd);
  stopRequested_.store(false);
  coalesce_ = device_.coalescing();
  pollUs_ = device_.pollUs();
  unsignalled_ = 0;
  pending_ = false;
  deferring_ = coalesce_.iopsThreshold == 0;  // no threshold: always
  windowPushed_ = 0;
  windowStart_ = std::chrono::steady_clock::now();
  // Read before the thread starts: from then on the queue is its thread's.
  const uint32_t startedAt = vq_->lastAvailIdx();
  thread_ = std::thread([this, sfd] { loop(sfd); });
  spdlog::info("vhost-user: queue {} started ({}size {}, {}{})", index_, cfg.packed ? "packed, " : "", num,
               describeBase(startedAt, cfg.packed), cfg.inflight != nullptr ? ", inflight tracked" : "");
  return okStatus();
}

void Vring::stop() {
  if (!running()) return;
  stopRequested_.store(true);
  signalFd(stopFd_.get());
  thread_.join();
  stopFd_.reset();
  base = vq_->lastAvailIdx();
  vq_.reset();
  spdlog::info("vhost-user: queue {} stopped at {}", index_, describeBase(base, base > 0xffff));
}

void Vring::reset() {
  stop();
  num = 0;
  addrs = {};
  hasAddrs = false;
  base = 0;
  kick.reset();
  setCall(UniqueFd());
  err.reset();
  inflight = nullptr;
  inflightQueueSize = 0;
  inflightPacked = false;
  started = false;
  enabled = false;
}

void Vring::loop(int stopFd) {
  const int source = device_.sourceFd(index_);
  if (source >= 0) {
    driveLoop(stopFd, source);
    return;
  }
  // A coalescing wait is tens of microseconds: the default 50 us timer
  // slack would double it.
  if (coalesce_.delayUs > 0) ::prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
  bool broken = false;
  // Serve what the guest posted before the kick fd was handed to us.
  if (!drain()) broken = true;
  // One interrupt at every start: a back end killed between a push and its
  // call (or a call written to an fd the front end has since replaced)
  // leaves completions the guest was never told about. A spurious
  // interrupt only makes the guest look at the used ring.
  if (!broken) {
    notify();
    unsignalled_ = 0;
    pending_ = false;
  }
  for (;;) {
    pollfd fds[2] = {{stopFd, POLLIN, 0}, {kick.get(), POLLIN, 0}};
    timespec wait{};
    timespec* timeout = nullptr;
    if (pending_) {
      std::chrono::nanoseconds left{};
      if (pendingDue(&left)) {
        notifyPushed();
        continue;
      }
      wait.tv_sec = static_cast<time_t>(left.count() / 1000000000);
      wait.tv_nsec = static_cast<long>(left.count() % 1000000000);
      timeout = &wait;
    }
    // A broken ring waits for the front end to set it up again: kicks are
    // no longer read, so a hostile guest cannot make this thread spin.
    int n = ::ppoll(fds, broken ? 1 : 2, timeout, nullptr);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      spdlog::error("vhost-user: queue {}: poll: errno {}; the queue stops serving", index_, errno);
      break;
    }
    if (n == 0) continue;  // the pending interrupt is due
    if (fds[0].revents) break;
    if (fds[1].revents & (POLLERR | POLLHUP | POLLNVAL)) {
      spdlog::error("vhost-user: queue {}: kick fd failed; the queue stops serving", index_);
      broken = true;
      continue;
    }
    if (fds[1].revents & POLLIN) {
      uint64_t count;
      [[maybe_unused]] ssize_t r = ::read(kick.get(), &count, sizeof(count));
      if (!drain()) broken = true;
    }
  }
  // Nothing pushed stays unannounced when the queue stops.
  if (pending_) notifyPushed();
}

bool Vring::drain() {
  vq_->setKicksEnabled(false);
  for (;;) {
    auto chain = vq_->pop();
    if (chain.ok() && !chain->has_value()) {
      // Empty: take kicks again, then look once more so a chain posted in
      // between is not left waiting for a kick the guest will not send.
      settlePushed();
      chain = pollRing();
    }
    if (chain.ok() && !chain->has_value()) {
      vq_->setKicksEnabled(true);
      chain = vq_->pop();
      if (chain.ok() && !chain->has_value()) return true;
      vq_->setKicksEnabled(false);
    }
    if (!chain.ok()) {
      spdlog::error("vhost-user: queue {}: {}; the queue stops until the front end sets it up again", index_,
                    chain.error().message);
      notifyPushed();
      signalFd(err.get());
      return false;
    }
    const Chain& c = **chain;
    uint32_t written = device_.handle(index_, c);
    vq_->push(c, written);
    ++unsignalled_;
    ++windowPushed_;
    if (stopRequested_.load(std::memory_order_relaxed)) {
      // The rest stays in the ring for the next start (from lastAvailIdx).
      notifyPushed();
      return true;
    }
    if (unsignalled_ >= kNotifyBatch) notifyPushed();
  }
}

Result<std::optional<Chain>> Vring::pollRing() {
  if (pollUs_ == 0) return std::optional<Chain>{};
  const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(pollUs_);
  for (;;) {
    __builtin_ia32_pause();
    auto chain = vq_->pop();
    if (!chain.ok() || chain->has_value()) return chain;
    if (stopRequested_.load(std::memory_order_relaxed) || std::chrono::steady_clock::now() >= until) return chain;
  }
}

void Vring::notifyPushed() {
  if (unsignalled_ > 0 && vq_->shouldNotify()) notify();
  unsignalled_ = 0;
  pending_ = false;
}

void Vring::settlePushed() {
  if (unsignalled_ == 0) return;
  if (coalesce_.delayUs == 0) {
    notifyPushed();
    return;
  }
  const auto now = std::chrono::steady_clock::now();
  const auto window = now - windowStart_;
  if (window >= std::chrono::milliseconds(10)) {
    const double rate = static_cast<double>(windowPushed_) / std::chrono::duration<double>(window).count();
    deferring_ = rate >= static_cast<double>(coalesce_.iopsThreshold);
    windowPushed_ = 0;
    windowStart_ = now;
  }
  if (!deferring_) {
    notifyPushed();
    return;
  }
  if (!pending_) {
    pending_ = true;
    pendingSince_ = now;
  }
}

bool Vring::pendingDue(std::chrono::nanoseconds* left) const {
  const auto due = pendingSince_ + std::chrono::microseconds(coalesce_.delayUs);
  const auto now = std::chrono::steady_clock::now();
  if (now >= due) return true;
  *left = due - now;
  return false;
}

// A device-driven queue (device.h, sourceFd): the device fills the guest's
// chains from its source. Polls the source only while the device can take
// from it, so a full source and an empty ring never make the thread spin.
void Vring::driveLoop(int stopFd, int source) {
  using Fill = VhostDevice::Fill;
  Fill state = fillRound();
  for (;;) {
    pollfd fds[3] = {{stopFd, POLLIN, 0}, {kick.get(), POLLIN, 0}, {source, POLLIN, 0}};
    nfds_t n = 1;  // a broken ring waits for a new setup
    if (state != Fill::kBroken) n = state == Fill::kIdle ? 3 : 2;
    int r = ::poll(fds, n, -1);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      spdlog::error("vhost-user: queue {}: poll: errno {}; the queue stops serving", index_, errno);
      return;
    }
    if (fds[0].revents) return;
    if (n >= 2 && (fds[1].revents & (POLLERR | POLLHUP | POLLNVAL))) {
      spdlog::error("vhost-user: queue {}: kick fd failed; the queue stops serving", index_);
      state = Fill::kBroken;
      continue;
    }
    bool wake = false;
    if (n >= 2 && (fds[1].revents & POLLIN)) {
      uint64_t count;
      [[maybe_unused]] ssize_t k = ::read(kick.get(), &count, sizeof(count));
      wake = true;
    }
    if (n >= 3 && (fds[2].revents & (POLLERR | POLLHUP | POLLNVAL)) && !(fds[2].revents & POLLIN)) {
      spdlog::error("vhost-user: queue {}: its source fd failed; the queue only serves kicks now", index_);
      state = Fill::kSourceFailed;
    } else if (n >= 3 && fds[2].revents) {
      wake = true;
    }
    if (wake) state = fillRound();
  }
}

VhostDevice::Fill Vring::fillRound() {
  using Fill = VhostDevice::Fill;
  for (;;) {
    Fill r = device_.fill(index_, *vq_);
    if (vq_->shouldNotify()) notify();
    if (r == Fill::kBroken) {
      spdlog::error(
          "vhost-user: queue {}: the guest broke the ring; the queue stops until the front end sets it up again",
          index_);
      signalFd(err.get());
      return r;
    }
    if (r == Fill::kSourceFailed) {
      spdlog::error("vhost-user: queue {}: its source failed; the queue only serves kicks now", index_);
      return r;
    }
    if (r != Fill::kMore) return r;
    // Stop after the budget in hand; the rest waits for the next start.
    if (stopRequested_.load(std::memory_order_relaxed)) return Fill::kIdle;
  }
}

void Vring::setCall(UniqueFd fd) {
  std::lock_guard<std::mutex> lock(callMu_);
  call_ = std::move(fd);
}

bool Vring::hasCall() const {
  std::lock_guard<std::mutex> lock(callMu_);
  return call_.valid();
}

void Vring::notify() {
  std::lock_guard<std::mutex> lock(callMu_);
  signalFd(call_.get());
}

}  // namespace offcore::virt
