// NvmeTcpHost: the C++ NVMe/TCP initiator. Discovers subsystems, connects
// an admin queue and N I/O queues, keeps the association alive, and serves
// the namespace as a BlockDevice. When the target goes away it reconnects
// with backoff; I/O issued meanwhile waits (up to io_timeout) and is retried
// on the new association, so a target restart shows up as a stall, not an
// error. Like Linux's nvme-fabrics, two bounds limit the stall once the
// association is lost: fast_io_fail (waiting and new I/O fail at once from
// then on, until it returns) and ctrl_loss_timeout (reconnecting stops, the
// host is failed for good and every I/O fails at once).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "block/block_device.h"
#include "nvme/auth/dhchap_host.h"
#include "nvme/host/queue.h"

namespace offcore::nvme {

struct HostOptions {
  std::string host_nqn = "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-000000000000";
  std::array<uint8_t, 16> host_id{};
  int io_queues = 2;
  uint32_t queue_depth = 32;
  uint32_t kato_ms = 10000;
  bool header_digest = false;
  bool data_digest = false;
  std::chrono::milliseconds io_timeout{30000};      // an I/O fails only after this long
  std::chrono::milliseconds command_timeout{8000};  // one command on a live queue
  std::chrono::milliseconds connect_timeout{3000};
  // Linux's fast_io_fail_tmo: this long after the association was lost, I/O
  // still waiting for it fails with EIO and new I/O fails at once, until a
  // reconnect succeeds. Negative: off (I/O waits up to io_timeout).
  std::chrono::milliseconds fast_io_fail{-1};
  // Linux's ctrl_loss_tmo: this long after the loss the host gives up
  // reconnecting and is failed (state() == kFailed); every I/O fails at once.
  // Negative: reconnect for ever.
  std::chrono::milliseconds ctrl_loss_timeout{-1};
  // DH-HMAC-CHAP: with a host secret, every queue (admin and I/O, also on
  // reconnect) authenticates when the target asks; with a controller secret
  // too, the target must prove itself and a target that does not ask is refused.
  std::optional<auth::DhchapKey> dhchap_secret;
  std::optional<auth::DhchapKey> dhchap_ctrl_secret;
  // Polled mode (HostQueue's): no reader thread per I/O queue; the owner
  // watches completionFd() and calls reapCompletions() from the one thread
  // that also submits asynchronous I/O (a FUSE disk's loop). Synchronous
  // I/O then belongs on other threads.
  bool polled = false;
  std::vector<uint8_t> dhchap_hashes{auth::kHashSha256, auth::kHashSha384, auth::kHashSha512};
  std::vector<uint8_t> dhchap_dhgroups{auth::kDhNull,      auth::kDhFfdhe2048, auth::kDhFfdhe3072,
                                       auth::kDhFfdhe4096, auth::kDhFfdhe6144, auth::kDhFfdhe8192};
};

struct DiscoveryRecord {
  std::string subnqn;
  std::string traddr;
  std::string trsvcid;
  uint8_t subtype = 0;
};

Result<std::vector<DiscoveryRecord>> discover(const std::string& address, uint16_t port, const HostOptions& options);

struct HostStats {
  uint64_t reads = 0, writes = 0, flushes = 0, discards = 0, reconnects = 0, errors = 0;
  uint64_t fast_failed = 0;  // I/O failed at once because the path was known lost
};

// live: an association is up; reconnecting: lost, trying again; failed:
// lost for longer than ctrl_loss_timeout, no more attempts.
enum class HostState { kLive, kReconnecting, kFailed };
const char* hostStateName(HostState s);

class NvmeTcpHost final : public BlockDevice {
 public:
  static Result<std::shared_ptr<NvmeTcpHost>> connect(const std::string& address, uint16_t port,
                                                      const std::string& subnqn, const HostOptions& options,
                                                      uint32_t nsid = 1);
  ~NvmeTcpHost() override;

  uint64_t sizeBytes() const override { return size_bytes_; }
  uint32_t blockSize() const override { return block_size_; }
  Status read(uint64_t offset, void* buf, size_t len) override;
  Status write(uint64_t offset, const void* buf, size_t len) override;
  Status flush() override;
  Status discard(uint64_t offset, uint64_t len) override;
  Status writeZeroes(uint64_t offset, uint64_t len) override;
  // One thread keeps many commands in flight; the completion runs on a
  // queue's reader thread (polled mode: on the poller, in
  // reapCompletions()). A command that meets a lost association is retried
  // on a thread of its own with the synchronous path's rules (io_timeout,
  // fast_io_fail, ctrl_loss_timeout), counted from its start; in polled
  // mode its completion is still handed to the poller.
  void readAsync(uint64_t offset, void* buf, size_t len, IoCompletion* done) override;
  void writeAsync(uint64_t offset, const void* buf, size_t len, IoCompletion* done) override;
  // Polled mode: an epoll fd over the I/O queues' sockets (-1 otherwise).
  int completionFd() override { return poll_fd_; }
  void reapCompletions() override;
  // Corks the I/O queues until unplug(), which sends what each holds in
  // one send (polled mode: the owner's loop plugs around its turn).
  void plug() override;
  void unplug() override;

  void close();
  bool connected() const { return connected_.load(); }
  HostState state() const;
  uint16_t cntlid() const { return cntlid_; }
  HostStats stats() const;
  const std::string& subnqn() const { return subnqn_; }

 private:
  NvmeTcpHost(std::string address, uint16_t port, std::string subnqn, HostOptions options, uint32_t nsid);
  Status establish();  // admin + I/O queues on a fresh association
  Result<HostCompletion> adminCommand(Sqe sqe, uint8_t* in = nullptr, size_t in_len = 0, const uint8_t* out = nullptr,
                                      size_t out_len = 0);
  struct AsyncIo;
  struct AsyncSplit;
  // Runs one I/O command, waiting out reconnects until the deadline.
  Status ioCommand(Sqe sqe, const uint8_t* out, size_t out_len, uint8_t* in, size_t in_len, bool is_write,
                   std::chrono::steady_clock::time_point deadline);
  Status ioCommand(Sqe sqe, const uint8_t* out, size_t out_len, uint8_t* in, size_t in_len, bool is_write) {
    return ioCommand(sqe, out, out_len, in, in_len, is_write, std::chrono::steady_clock::now() + options_.io_timeout);
  }
  // The asynchronous path: a read or write cut into commands of at most
  // max_transfer_ bytes, each started on the next live queue.
  void startAsync(bool is_write, uint64_t offset, uint8_t* in, const uint8_t* out, size_t len, IoCompletion* done);
  void startCommand(AsyncIo* io);
  // Aligned and within the namespace, or the error to answer with.
  Status checkRange(uint64_t offset, uint64_t len) const;
  // A Read or Write of len bytes at offset (one command: len <= max_transfer_).
  Sqe rwSqe(bool is_write, uint64_t offset, size_t len) const;
  void retryLater(AsyncIo* io);  // a thread running the synchronous path
  void keepAliveLoop();
  void reconnectLoop();
  void markBroken();
  Error failNow(const std::string& why, int code);  // counts the error

  const std::string address_;
  const uint16_t port_;
  const std::string subnqn_;
  const HostOptions options_;
  const uint32_t nsid_;
  uint64_t size_bytes_ = 0;
  uint32_t block_size_ = 4096;
  // Written by establish() (a reconnect runs on its own thread) while I/O
  // reads it: atomic, read once per request.
  std::atomic<uint32_t> max_transfer_{1 << 20};
  uint32_t in_capsule_ = 0;
  uint16_t cntlid_ = 0;

  std::mutex state_mutex_;  // guards the queues' replacement
  std::condition_variable state_cv_;
  std::shared_ptr<HostQueue> admin_;
  std::vector<std::shared_ptr<HostQueue>> io_;
  std::atomic<bool> connected_{false};
  std::atomic<bool> closing_{false};
  std::atomic<bool> failed_{false};                // ctrl_loss_timeout passed
  std::chrono::steady_clock::time_point lost_at_;  // under state_mutex_: when connected_ last fell
  std::atomic<uint64_t> generation_{0};
  std::atomic<uint64_t> next_queue_{0};
  std::thread keepalive_;
  std::thread reconnector_;

  // Polled mode: the epoll fd, queues replaced by a reconnect that the
  // poller has not yet seen die (under state_mutex_), and the poller's own
  // copy of the queues to read, refreshed when queues_changed_ moves.
  int poll_fd_ = -1;
  std::vector<std::shared_ptr<HostQueue>> draining_;
  std::atomic<uint64_t> queues_changed_{0};
  uint64_t poller_seen_ = ~0ull;
  std::vector<std::shared_ptr<HostQueue>> poller_queues_;
  std::vector<std::shared_ptr<HostQueue>> corked_;  // poller only: what plug() corked
  // Polled mode: retried commands finish on the poller too. A retry thread
  // parks its result here (under retry_mutex_) and writes retried_fd_ (in
  // the epoll set); reapCompletions() finishes them.
  int retried_fd_ = -1;
  std::vector<std::pair<AsyncIo*, Status>> retried_;
  void finishRetried();

  // Threads retrying asynchronous commands; close() waits for them.
  std::mutex retry_mutex_;
  std::condition_variable retry_cv_;
  int retrying_ = 0;

  // Counters (relaxed atomics: no lock on the I/O path).
  struct Counters {
    std::atomic<uint64_t> reads{0}, writes{0}, flushes{0}, discards{0}, reconnects{0}, errors{0}, fast_failed{0};
  };
  Counters stats_;
};

// Status codes back to BlockDevice errors.
Error blockErrorForStatus(uint16_t status, const std::string& what);

}  // namespace offcore::nvme
