// HostQueue: the initiator's side of one NVMe/TCP connection (one queue).
// Callers on any thread submit a command and block until its completion; a
// reader thread receives PDUs, copies C2HData into the caller's buffer,
// answers R2Ts with H2CData, and wakes the caller on CapsuleResp (or on a
// C2HData carrying the SUCCESS flag).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/result.h"
#include "nvme/pdu.h"

namespace offcore::nvme {

struct QueueOptions {
  std::string address;
  uint16_t port = 4420;
  bool header_digest = false;
  bool data_digest = false;
  uint32_t depth = 32;
  uint32_t in_capsule_limit = 0;  // bytes of write data sent in-capsule (0: none)
  std::chrono::milliseconds connect_timeout{3000};
};

struct HostCompletion {
  Cqe cqe;
  uint16_t status() const { return cqe.status(); }
};

// Error codes a submit() returns besides NVMe status: the queue is gone.
inline constexpr int kQueueDisconnected = 107;  // ENOTCONN
inline constexpr int kQueueTimedOut = 110;      // ETIMEDOUT

class HostQueue {
 public:
  explicit HostQueue(QueueOptions options);
  ~HostQueue();
  HostQueue(const HostQueue&) = delete;
  HostQueue& operator=(const HostQueue&) = delete;

  // TCP connect and the ICReq/ICResp exchange.
  Status open();
  // Sends sqe (its CID is filled in), with host-to-controller data `out` or a
  // buffer `in` for controller-to-host data, and waits for the completion.
  Result<HostCompletion> submit(Sqe sqe, const uint8_t* out, size_t out_len, uint8_t* in, size_t in_len,
                                std::chrono::milliseconds timeout);
  void close();
  bool alive() const { return alive_.load(); }
  uint32_t maxH2CData() const { return max_h2c_data_; }

 private:
  struct Pending {
    const uint8_t* out = nullptr;
    size_t out_len = 0;
    uint8_t* in = nullptr;
    size_t in_len = 0;
    bool done = false;
    Cqe cqe;
    // Each waiter has its own: a completion wakes one thread, not the queue.
    std::condition_variable cv;
  };
  void readerLoop();
  void failAll();
  Status sendAll(const std::vector<uint8_t>& bytes);
  Status sendAllLocked(const std::vector<uint8_t>& bytes);
  void handlePdu(const Pdu& pdu);

  QueueOptions options_;
  int fd_ = -1;
  std::atomic<bool> alive_{false};
  uint32_t max_h2c_data_ = 131072;
  uint32_t ctrl_alignment_ = 4;
  Digests digests_;
  PduParser parser_{Role::kHost};
  std::thread reader_;

  std::mutex send_mutex_;
  std::mutex mutex_;  // pending_, free_cids_
  std::condition_variable cv_;
  std::map<uint16_t, Pending*> pending_;
  std::vector<uint16_t> free_cids_;
};

}  // namespace offcore::nvme
