// Nexus: one block device mirrored over several replicas (Mayastor's nexus,
// brief §5). It is itself a BlockDevice, so `disk serve` puts it behind the
// FUSE disk exactly where a single NVMe/TCP initiator would sit: the host
// sees one disk while the SoC fans out.
//
// - Writes go to every replica that is online or rebuilding, all at once,
//   from the caller's one buffer; one is acknowledged when every replica it
//   was sent to answered and at least one took it. A replica that fails
//   (error or timeout) is marked faulted and I/O goes on without it
//   (degraded), with no error to the host.
// - Reads go to the online replica with the fewest requests in flight; a
//   failed read is retried on another online replica. A faulted or
//   rebuilding replica is never read.
// - Regions a replica missed are recorded in a write-intent bitmap that is
//   durable (NexusJournal) before the write that skipped the replica is
//   acknowledged, so after any restart a replica that missed writes is
//   still known as such and is never read until rebuilt.
// - Rebuild copies only the missed regions from an online replica while
//   I/O continues (a region being copied holds new writes to it back), at
//   a bounded rate, then returns the replica to service.
//
// Concurrency: docs/CONCURRENCY.md ("Replicated volumes"). In short: any
// thread may submit; completions run on the thread that reaps the
// replicas (the disk's loop, in polled mode) or inline; one rebuild thread
// per nexus; one journal thread makes bitmap changes durable.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "block/block_device.h"
#include "nexus/nexus_journal.h"

namespace offcore::nexus {

inline constexpr size_t kMaxReplicas = 8;

struct ReplicaStatus {
  std::string name;
  ReplicaState state = ReplicaState::kOnline;
  uint64_t missed_bytes = 0;         // what it lacks: missed regions x region size
  uint64_t rebuild_total_bytes = 0;  // of the rebuild running now (0: none)
  uint64_t rebuild_done_bytes = 0;
  uint64_t reads = 0, writes = 0, errors = 0, inflight = 0;
  std::string last_error;  // why it was faulted last
};

struct NexusStatus {
  uint64_t generation = 0;  // bumped by every replica state change
  uint64_t region_bytes = 0;
  std::vector<ReplicaStatus> replicas;
  // "online": every replica online; "degraded": some online, some not;
  // "faulted": none online (I/O fails).
  std::string state;
};

struct ReplicaDevice {
  std::string name;  // stable identity across restarts (the journal keys on it)
  std::shared_ptr<BlockDevice> device;
};

struct NexusOptions {
  uint64_t region_bytes = 1 << 20;  // write-intent granularity (a power of two, >= the block size)
  // Rebuild: at most this many MiB/s of copy (0: as fast as the replicas
  // go), so the volume keeps serving while a replica catches up.
  uint32_t rebuild_mib_per_s = 256;
  // A faulted replica is probed (one read) this often; when it answers,
  // its rebuild starts. 0: no automatic rebuild (rebuild() starts one).
  uint32_t probe_interval_ms = 1000;
  // Called on the submitting thread before each read and write goes to the
  // replicas (not on the rebuild's copies). The disk service's gate ends
  // the process when its claim on the replicas may be lost (src/volumes),
  // so no I/O leaves once another nexus may own them; empty: none.
  std::function<void()> gate;
};

class Nexus : public BlockDevice {
 public:
  virtual NexusStatus status() const = 0;
  // Starts rebuilding a faulted replica now (normally the probe does it).
  virtual Status rebuild(const std::string& replica) = 0;
  // Waits until no rebuild runs and none is due (tests, `volume` commands).
  virtual bool waitIdle(int timeout_ms) = 0;
};

// Opens the nexus: the journal's record says which replicas are behind.
// Every replica must have the same size and block size. A replica the
// record does not know is new (its contents unknown): it starts faulted
// with every region missed, so it is rebuilt whole before it serves reads.
Result<std::unique_ptr<Nexus>> openNexus(std::vector<ReplicaDevice> replicas, std::shared_ptr<NexusJournal> journal,
                                         const NexusOptions& options = {});

}  // namespace offcore::nexus
