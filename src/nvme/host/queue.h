// HostQueue: the initiator's side of one NVMe/TCP connection (one queue).
// Callers on any thread submit a command, either blocking until its
// completion (submit) or handing it a waiter (submitAsync); a reader thread
// receives PDUs, copies C2HData into the caller's buffer, answers R2Ts with
// H2CData, and on CapsuleResp (or a C2HData carrying the SUCCESS flag)
// wakes the blocked caller or calls the waiter.
#pragma once

#include <sys/types.h>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
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
  // No reader thread: the owner's event loop watches fd() and calls
  // pollRead() (see "Polled mode" below).
  bool polled = false;
};

// Polled mode: one thread (the poller: an event loop that also produces the
// commands, e.g. a FUSE disk's loop) reads the socket, and submitAsync never
// blocks it: a command finding no free CID waits in a backlog the poller
// starts as answers free CIDs. So that the target never stops reading us
// while the poller is inside a send (our target pauses a queue whose unsent
// replies pass 4 MiB), a queue keeps at most kPolledReadBytes of read data
// in flight. Synchronous submit() from other threads still works (the
// poller completes them); the poller itself must never call it.
inline constexpr size_t kPolledReadBytes = 2u << 20;

struct HostCompletion {
  Cqe cqe;
  uint16_t status() const { return cqe.status(); }
};

// Error codes a submit() returns besides NVMe status: the queue is gone.
inline constexpr int kQueueDisconnected = 107;  // ENOTCONN
inline constexpr int kQueueTimedOut = 110;      // ETIMEDOUT

// The end of an asynchronous command. completed() runs exactly once, on the
// queue's reader thread (or on the thread that closes the queue), never
// under the queue's locks: cqe is the controller's answer, or null when the
// queue was lost first (`lost` says why). The command's buffers belong to
// the queue until then.
class HostQueueWaiter {
 public:
  virtual void completed(const Cqe* cqe, const Error* lost) = 0;

 protected:
  ~HostQueueWaiter() = default;
};

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
  // Sends sqe and returns; waiter->completed() follows. Waits only for a
  // free queue slot (until `deadline`), which is the back-pressure. An error
  // means the command was not sent and the waiter will not be called.
  Status submitAsync(Sqe sqe, const uint8_t* out, size_t out_len, uint8_t* in, size_t in_len,
                     std::chrono::steady_clock::time_point deadline, HostQueueWaiter* waiter);
  // Polled mode: the socket, and what the poller calls when it is
  // readable. Reads what is there, handles every complete PDU (answers
  // C2HData and completions, R2Ts with H2CData), then starts backlogged
  // commands. Returns false once the queue is dead; every command it held
  // has been failed to its waiter by then.
  int fd() const { return fd_; }
  bool pollRead();
  // Polled mode: until this is called, a synchronous submit() reads its own
  // answer (the association's Connect and authentication run before any
  // poller watches the queue); after it, only the poller reads.
  void attachPoller() { poller_attached_ = true; }
  // True if an asynchronous command is still unanswered past its deadline:
  // the queue is stuck and the owner should drop it (which fails the
  // command to its waiter).
  bool overdue(std::chrono::steady_clock::time_point now);
  void close();
  // Polled mode: marks the queue dead and shuts the socket down, keeping
  // the fd (the poller may be reading it); the poller's next pollRead()
  // fails the commands. close() (or the destructor) releases the fd.
  void shutdown();
  bool alive() const { return alive_.load(); }
  uint32_t maxH2CData() const { return max_h2c_data_; }
  // Corking: from cork() until uncork(), the command capsules any thread
  // sends on this queue are held and leave in one send at uncork(), which
  // the poller calls at the end of its turn (H2CData goes out at once: its
  // command is on the wire already). uncork() waits only as a send does,
  // for room in the socket buffer. A failed send there shuts the queue
  // down, so its commands fail to their waiters as on any lost
  // connection. Bounded: held capsules hold a CID each (in-capsule data
  // at most the target's IOCCSZ).
  void cork();
  void uncork();

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
    // Asynchronous commands: the waiter to call instead of waking a thread.
    HostQueueWaiter* waiter = nullptr;
    std::chrono::steady_clock::time_point deadline;
  };
  // Takes an asynchronous command out of pending_ and frees its CID; the
  // caller calls the waiter once mutex_ is released. Needs mutex_.
  HostQueueWaiter* retireAsyncLocked(uint16_t cid, Pending* p);
  // An asynchronous command waiting for a CID (polled mode).
  struct Deferred {
    Sqe sqe;
    const uint8_t* out;
    size_t out_len;
    uint8_t* in;
    size_t in_len;
    std::chrono::steady_clock::time_point deadline;
    HostQueueWaiter* waiter;
  };
  // Takes a CID for an asynchronous command and records it. Needs mutex_.
  Pending* claimLocked(const Deferred& d, uint16_t* cid);
  // The command capsule for CID `cid` (SGL filled in; write data in-capsule
  // when it fits the target's limit), sent whole.
  Status sendCapsule(Sqe sqe, uint16_t cid, const uint8_t* out, size_t out_len, size_t in_len);
  // Sends a claimed command; on failure retires it (the waiter is not called).
  Status sendClaimed(const Deferred& d, uint16_t cid, Pending* p);
  bool canStartLocked(const Deferred& d) const;
  void startBacklog();
  // Reads once (blocking in thread mode) and handles the PDUs: the bytes
  // read (0: nothing there), or -1 when the queue is dead.
  ssize_t readSome(uint8_t* buf, size_t cap);
  void readerLoop();
  void failAll();
  Status sendAll(const std::vector<uint8_t>& bytes);
  Status sendAllLocked(const std::vector<uint8_t>& bytes);
  Status writeAllLocked(const uint8_t* data, size_t len);
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
  bool corked_ = false;                                // under send_mutex_
  std::vector<uint8_t> held_;                          // under send_mutex_: sent at uncork()
  static constexpr size_t kHeldKeepBytes = 256 << 10;  // capacity kept between turns
  std::mutex mutex_;                                   // pending_, free_cids_
  std::condition_variable cv_;
  std::map<uint16_t, Pending*> pending_;
  std::vector<uint16_t> free_cids_;
  // The Pending of each CID's asynchronous command (index = CID).
  std::vector<std::unique_ptr<Pending>> async_slots_;
  // Polled mode (under mutex_): commands waiting for a CID, and the read
  // data in flight.
  std::deque<Deferred> backlog_;
  size_t read_bytes_in_flight_ = 0;
  std::unique_ptr<uint8_t[]> poll_buf_;
  std::atomic<bool> poller_attached_{false};
};

}  // namespace offcore::nvme
