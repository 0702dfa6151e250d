// NexusJournal: where a nexus keeps what must outlive its process: each
// replica's state and the regions it missed (its write-intent bitmap). The
// file journal is the embedded default; a fake lives in tests/nexus.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace offcore::nexus {

enum class ReplicaState : uint8_t { kOnline, kFaulted, kRebuilding };
const char* replicaStateName(ReplicaState s);
Result<ReplicaState> parseReplicaState(std::string_view s);

struct ReplicaRecord {
  std::string name;
  ReplicaState state = ReplicaState::kOnline;
  std::vector<uint64_t> missed;  // bit r of word r/64: region r was written without this replica
};

struct NexusRecord {
  uint64_t generation = 0;
  uint64_t region_bytes = 0;
  uint64_t size_bytes = 0;
  std::vector<ReplicaRecord> replicas;
};

class NexusJournal {
 public:
  virtual ~NexusJournal() = default;
  // nullopt: nothing saved yet (a new volume).
  virtual Result<std::optional<NexusRecord>> load() = 0;
  // Durable when it returns ok.
  virtual Status save(const NexusRecord& record) = 0;
};

// A JSON file written atomically (temporary, fsync, rename, directory
// fsync), mode 0600. Bitmaps are stored as runs of missed regions.
std::shared_ptr<NexusJournal> makeFileJournal(std::string path);

// How many regions a replica missed.
uint64_t missedRegions(const ReplicaRecord& r);

// The record <-> JSON text, exposed for the fuzzer and tests. Parsing
// bounds everything it allocates by the record's own size_bytes and
// region_bytes, themselves bounded (at most 2^26 regions, 8 replicas).
std::string encodeRecord(const NexusRecord& record);
Result<NexusRecord> decodeRecord(std::string_view text);

}  // namespace offcore::nexus
