// One NVMe controller: the state an association between a host and a
// subsystem carries (properties, features, keep-alive, pending asynchronous
// events) and the admin and I/O command handlers. Transport independent: the
// TCP connection hands it a parsed command with its host-to-controller data
// and sends back what it returns.
//
// Threading: an association's admin queue and I/O queues may live on
// different poll groups. Admin state sits behind mutex_ (admin commands
// only); the I/O path reads an atomic namespace snapshot and bumps atomic
// counters, so queues never contend with each other.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "nvme/pdu.h"
#include "nvme/target/io_buffer.h"
#include "nvme/target/subsystem.h"

namespace offcore::nvme {

inline constexpr uint32_t kLbaBytes = 4096;  // the one LBA format offered
inline constexpr uint8_t kLbaShift = 12;
inline constexpr uint8_t kAerLimit = 4;  // AERL + 1

struct Command {
  Sqe sqe;
  uint16_t qid = 0;
  std::vector<uint8_t> data;  // host-to-controller data, already received
  uint32_t transfer_len = 0;  // from the SGL
};

struct Completion {
  uint16_t status = kScSuccess;
  uint32_t dw0 = 0;
  uint32_t dw1 = 0;
  std::vector<uint8_t> data;                // controller-to-host data
  std::shared_ptr<const IoBuffer> payload;  // a read's data instead (sent by reference)
  bool deferred = false;                    // an AER: completes later through the event sink
};

inline Completion withStatus(uint16_t status) {
  Completion c;
  c.status = status;
  return c;
}

struct TargetLimits {
  uint32_t max_queue_entries = 128;  // CAP.MQES + 1
  uint16_t max_io_queues = 8;
  uint32_t in_capsule_data = 16384;  // I/O queues (IOCCSZ)
  uint32_t max_h2c_data = 131072;
  uint8_t mdts = 8;  // 2^8 * 4 KiB = 1 MiB per command
  // Resource bounds against hostile hosts (docs/SECURITY.md).
  uint32_t max_r2t_per_queue = 8;           // write buffers held for R2T at once (each <= MDTS)
  size_t max_output_bytes = 4u << 20;       // stop reading a queue whose unsent replies pass this
  uint32_t connect_timeout_ms = 10000;      // ICReq + Connect must complete within this
  uint32_t max_connections = 1024;          // queues on the whole target
  uint32_t max_connections_per_peer = 128;  // queues from one IP address
  std::string model = "offcore volume";
  std::string firmware = "0.1.0";
};

// What the discovery controller lists.
struct DiscoveryEntry {
  std::string subnqn;
  std::string traddr;
  std::string trsvcid;
  uint8_t subtype = kSubtypeNvm;
};

class Controller {
 public:
  using EventSink = std::function<void(uint16_t cid, uint32_t dw0)>;
  using DiscoveryLister = std::function<std::vector<DiscoveryEntry>(const std::string& host_nqn)>;

  Controller(uint16_t cntlid, std::shared_ptr<Subsystem> subsystem, std::string host_nqn,
             std::array<uint8_t, 16> host_id, uint32_t kato_ms, const TargetLimits& limits);
  // The discovery controller of the well-known discovery NQN.
  static std::shared_ptr<Controller> makeDiscovery(uint16_t cntlid, std::string host_nqn,
                                                   std::array<uint8_t, 16> host_id, uint32_t kato_ms,
                                                   const TargetLimits& limits, DiscoveryLister lister,
                                                   std::function<uint64_t()> generation);

  uint16_t cntlid() const { return cntlid_; }
  bool isDiscovery() const { return discovery_; }
  const std::string& hostNqn() const { return host_nqn_; }
  const std::shared_ptr<Subsystem>& subsystem() const { return subsystem_; }
  std::string subsystemNqn() const;

  Completion admin(const Command& cmd);
  Completion io(const Command& cmd);
  Completion propertyGet(const Sqe& sqe);
  Completion propertySet(const Sqe& sqe);

  bool ready() const { return (csts_.load() & kCstsReady) != 0; }
  uint16_t grantedIoQueues() const { return io_queues_granted_.load(); }

  // Keep-alive: any command counts as traffic (TBKAS).
  void touch() { last_traffic_ns_.store(nowNs(), std::memory_order_relaxed); }
  uint32_t katoMs() const { return kato_ms_.load(); }
  bool keepAliveExpired() const;

  // The admin queue registers where asynchronous events go.
  void setEventSink(EventSink sink);
  void notifyNamespaceChanged(uint32_t nsid);

 private:
  static int64_t nowNs() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  Completion identify(const Command& cmd);
  Completion identifyController();
  Completion identifyNamespace(uint32_t nsid);
  Completion getLogPage(const Command& cmd);
  Completion setFeatures(const Command& cmd);
  Completion getFeatures(const Command& cmd);
  Completion asyncEventRequest(const Command& cmd);
  const Namespace* findNamespace(const std::vector<Namespace>& list, uint32_t nsid) const;
  Completion readWrite(const Command& cmd, const Namespace& ns, bool write);
  Completion datasetManagement(const Command& cmd, const Namespace& ns);
  Completion writeZeroes(const Command& cmd, const Namespace& ns);

  const uint16_t cntlid_;
  std::shared_ptr<Subsystem> subsystem_;
  const std::string host_nqn_;
  const std::array<uint8_t, 16> host_id_;
  TargetLimits limits_;
  bool discovery_ = false;
  DiscoveryLister discovery_lister_;
  std::function<uint64_t()> discovery_generation_;

  std::atomic<uint32_t> cc_{0};
  std::atomic<uint32_t> csts_{0};
  std::atomic<uint32_t> kato_ms_;
  std::atomic<int64_t> last_traffic_ns_;
  std::atomic<uint16_t> io_queues_granted_;

  // SMART counters, touched by every I/O queue.
  std::atomic<uint64_t> units_read_{0}, units_written_{0}, read_cmds_{0}, write_cmds_{0};

  std::mutex mutex_;  // admin state below
  uint32_t aec_ = 0;
  uint32_t features_[256] = {};
  std::deque<uint16_t> aer_cids_;
  std::vector<uint32_t> changed_nsids_;
  bool ns_event_pending_ = false;      // masked until the host reads the log
  bool undelivered_ns_event_ = false;  // happened while no AER was outstanding
  EventSink event_sink_;
};

// Maps a BlockDevice error to the NVMe status the host should see.
uint16_t statusForBlockError(const Error& e, bool write);

}  // namespace offcore::nvme
