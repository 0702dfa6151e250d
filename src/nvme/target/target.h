// NvmeTcpTarget: the NVMe/TCP listener, its poll groups, and the table of
// live controllers (associations).
//
// Threading (docs/CONCURRENCY.md): one poll group per allowed CPU, each a thread pinned to it
// with its own EventLoop. The acceptor runs on group 0 and hands each new
// socket to the next group; a connection (= one NVMe queue) lives on that
// group for its whole life. Block I/O runs inline on the group's thread. The
// controller table is touched only on Connect, disconnect and keep-alive
// expiry, never per I/O.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "base/event_loop.h"
#include "base/result.h"
#include "nvme/target/controller.h"
#include "nvme/target/subsystem.h"
#include "nvme/target/sync_worker.h"

namespace offcore::nvme {

class TargetConnection;

// The CPUs the calling thread may run on (what new threads inherit), in order.
std::vector<int> allowedCpus();

struct TargetConfig {
  std::string listen_addr = "0.0.0.0";
  uint16_t port = 4420;
  // 0: one per CPU this process may run on (sched_getaffinity: taskset, a
  // cpuset), each pinned to its CPU.
  int poll_groups = 0;
  // Busy polling (EventLoop::setBusyPoll) on every poll group: spin this
  // long after the last event before sleeping. 0: off.
  std::chrono::microseconds busy_poll{0};
  TargetLimits limits;
  auth::DhchapPolicy dhchap;  // hashes and DH groups offered to authenticating hosts
};

struct PollGroup {
  EventLoop loop;
  std::thread thread;
  std::unordered_map<int, std::shared_ptr<TargetConnection>> connections;  // loop thread only
};

struct ConnectOutcome {
  Completion completion;
  std::shared_ptr<Controller> controller;
  // Set when the host must authenticate this queue (AUTHREQ.ATR is in dw0).
  std::optional<auth::DhchapSecrets> auth;
};

struct ControllerSummary {
  uint16_t cntlid;
  std::string subnqn;
  std::string hostnqn;
  int io_queues;
};

class NvmeTcpTarget {
 public:
  NvmeTcpTarget(TargetConfig config, std::shared_ptr<SubsystemRegistry> registry);
  ~NvmeTcpTarget();

  Status start();
  void stop();
  uint16_t port() const { return bound_port_; }
  const TargetConfig& config() const { return config_; }
  // Where poll groups send commands that wait on the disk (Flush).
  SyncWorker& syncWorker() { return sync_; }
  // The CPU each poll group is pinned to (-1: not pinned); set by start().
  const std::vector<int>& pollGroupCpus() const { return group_cpus_; }
  SubsystemRegistry& registry() { return *registry_; }

  // ---- called by connections, on their own group's thread ----
  // remote: the host's address:port, named in the log line of a refusal.
  ConnectOutcome connect(const Command& cmd, const std::string& local_addr, const std::string& remote, PollGroup& group,
                         const std::shared_ptr<TargetConnection>& conn);
  void queueClosed(uint16_t cntlid, uint16_t qid);
  // Every accepted connection calls this once when it closes.
  void connectionClosed(const std::string& peer);

  // ---- management ----
  void notifyNamespaceChanged(const std::string& subnqn, uint32_t nsid);
  // Ends every association with this subsystem (before a volume goes away).
  void disconnectSubsystem(const std::string& subnqn);
  std::vector<ControllerSummary> controllers() const;
  int connectionsFor(const std::string& subnqn) const;

 private:
  struct Association {
    std::shared_ptr<Controller> controller;
    // (group, connection) per queue id; 0 is the admin queue.
    std::map<uint16_t, std::pair<PollGroup*, std::weak_ptr<TargetConnection>>> queues;
  };
  void accept();
  // Counts a new connection from `peer` unless a cap (TargetLimits) is reached.
  bool admitConnection(const std::string& peer);
  std::vector<DiscoveryEntry> discoveryEntries(const std::string& host_nqn, const std::string& local_addr) const;
  void closeQueues(const Association& a);
  uint16_t allocateCntlid();  // under mutex_

  TargetConfig config_;
  std::shared_ptr<SubsystemRegistry> registry_;
  std::vector<std::unique_ptr<PollGroup>> groups_;
  // Declared after groups_: destroyed first, though stop() has joined it by then.
  SyncWorker sync_;
  std::vector<int> group_cpus_;
  int listen_fd_ = -1;
  uint16_t bound_port_ = 0;
  std::atomic<size_t> next_group_{0};

  mutable std::mutex mutex_;
  std::map<uint16_t, Association> associations_;
  uint16_t next_cntlid_ = 1;

  std::mutex conn_mutex_;  // the connection caps; taken on accept and close only
  std::unordered_map<std::string, uint32_t> peer_connections_;
  uint32_t total_connections_ = 0;
  uint64_t refused_ = 0;
};

}  // namespace offcore::nvme
