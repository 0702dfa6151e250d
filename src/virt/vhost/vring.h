// Vring: one queue of a vhost-user back end as the server drives it — the
// state the front end configured (SET_VRING_*), and while running, one thread
// that waits on the kick eventfd and serves the VirtQueue through the device:
// request/response queues pop, handle() and push; a device-driven queue
// (VhostDevice::sourceFd, virtio-net receive) also waits on the device's
// source fd and lets the device fill() the ring.
//
// Threading (docs/CONCURRENCY.md "vhost-user"): the control thread owns every
// field and calls stop() before changing any of them or the memory table,
// except the call fd (setCall(), under a mutex); while running, the queue
// thread alone touches the VirtQueue.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>

#include "base/result.h"
#include "virt/vhost/device.h"
#include "virt/vhost/dirty_log.h"
#include "virt/vhost/guest_memory.h"
#include "virt/vhost/unique_fd.h"
#include "virt/vhost/virtqueue.h"

namespace offcore::virt {

class Vring {
 public:
  Vring(uint16_t index, VhostDevice& device) : index_(index), device_(device) {}
  ~Vring() { stop(); }
  Vring(const Vring&) = delete;
  Vring& operator=(const Vring&) = delete;

  // Front-end configuration; change only while stopped.
  uint32_t num = 0;
  VringAddresses addrs;
  bool hasAddrs = false;
  uint32_t base = 0;  // SET/GET_VRING_BASE (VirtQueueConfig::lastAvailIdx), saved by stop()
  UniqueFd kick, err;
  bool started = false;  // SET_VRING_KICK seen since the last GET_VRING_BASE
  bool enabled = false;  // SET_VRING_ENABLE
  // SET_INFLIGHT_FD: this queue's region, the queue size and the ring type
  // it was laid out for (nullptr: no inflight tracking). Owned by the session.
  uint8_t* inflight = nullptr;
  uint16_t inflightQueueSize = 0;
  bool inflightPacked = false;

  // Everything a start needs is there (memory is checked by the caller).
  bool configured() const { return started && hasAddrs && num != 0 && kick.valid(); }
  bool running() const { return thread_.joinable(); }

  // Builds the VirtQueue from the saved state and starts the queue thread.
  // Fails when the rings lie outside guest memory.
  Status start(const GuestMemory& mem, DirtyLog* log, uint64_t features);
  // Stops the thread (it finishes the chain in hand), saves the avail index.
  void stop();
  // Back to the state of a new connection.
  void reset();
  // SET_VRING_CALL, also while running: QEMU swaps the call fd whenever the
  // guest masks or unmasks the queue's vector, so this must not restart the
  // thread. The next interrupt goes to the new fd; QEMU itself looks at the
  // old one when it swaps back.
  void setCall(UniqueFd fd);
  bool hasCall() const;

 private:
  void loop(int stopFd);
  // A device-driven queue (VhostDevice::sourceFd): polls kick and source.
  void driveLoop(int stopFd, int source);
  // Calls fill() until it is not kMore (or stop() asks), notifying between.
  VhostDevice::Fill fillRound();
  // Serves chains until the ring is empty; false when the guest broke it.
  // Leaves the interrupt for what it pushed pending when coalescing.
  bool drain();
  // The ring ran empty: looks again for up to pollUs_ (device.h pollUs()).
  Result<std::optional<Chain>> pollRing();
  // The interrupt for everything pushed so far, if the guest wants one.
  void notifyPushed();
  // At the end of a drain: per the measured rate, wait or signal now.
  void settlePushed();
  // A pending interrupt's deadline has passed (or comes in `left`).
  bool pendingDue(std::chrono::nanoseconds* left) const;
  void notify();

  const uint16_t index_;
  VhostDevice& device_;
  std::unique_ptr<VirtQueue> vq_;
  UniqueFd stopFd_;
  // Set by stop() before it signals: drain() returns after the chain in
  // hand, so a guest that never lets its ring empty cannot hold stop().
  std::atomic<bool> stopRequested_{false};
  // Coalescing (VhostDevice::coalescing), the queue thread's.
  VhostDevice::Coalescing coalesce_;
  uint32_t pollUs_ = 0;
  uint32_t unsignalled_ = 0;  // chains pushed since the last notifyPushed()
  bool pending_ = false;      // an interrupt waits for pendingSince_ + delay
  std::chrono::steady_clock::time_point pendingSince_;
  bool deferring_ = false;  // the last window's rate was above the threshold
  uint64_t windowPushed_ = 0;
  std::chrono::steady_clock::time_point windowStart_;
  // The one field the control thread changes under a running queue.
  mutable std::mutex callMu_;
  UniqueFd call_;
  std::thread thread_;
};

}  // namespace offcore::virt
