// NexusState: where mirrored volumes keep what outlives a nexus: each
// volume's journal (nexus/nexus_journal.h) and each replica's claim
// (nexus/claim.h). Two Impls: a directory (the embedded default,
// <cluster_dir>/nexus: a JSON file per journal, a flock per claim) and etcd
// (the cluster store: docs/ETCD.md, "Replicated volumes"), where a journal
// save is a transaction that also checks the saver's claims are still its
// own, so a nexus whose lease ran out can never overwrite its successor's
// journal.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "kv/kv.h"
#include "nexus/claim.h"
#include "nexus/nexus_journal.h"

namespace offcore::volumes {

class NexusState {
 public:
  virtual ~NexusState() = default;

  // Claims every replica for `holder`, all or none (EBUSY naming the holder
  // when another has one). A holder with the same owner takes over a claim
  // its predecessor left (a restarted disk service).
  virtual Result<std::unique_ptr<nexus::ReplicaClaim>> claim(const std::vector<std::string>& replicas,
                                                             const nexus::ClaimHolder& holder) = 0;
  // The journal of volume `id`. With `claim` (one this state made), a save
  // is refused once any of its replicas is no longer claimed by it.
  virtual Result<std::shared_ptr<nexus::NexusJournal>> journal(const std::string& id,
                                                               const nexus::ReplicaClaim* claim) = 0;
  virtual Status removeJournal(const std::string& id) = 0;
  // What a disk's `--journal` and its record carry for volume `id` (a path,
  // or etcd:ID), parsed back by openNexusState's callers.
  virtual std::string journalRef(const std::string& id) const = 0;
  // For messages: the directory or etcd://...
  virtual std::string location() const = 0;
};

inline constexpr int kDefaultClaimTtlS = 15;

// dir holds ID.json journals and claims/.
std::unique_ptr<NexusState> makeDirNexusState(std::string dir);
// Claims are keys under a lease of claim_ttl_s seconds, renewed while held.
std::unique_ptr<NexusState> makeKvNexusState(std::shared_ptr<kv::KvClient> kv, int claim_ttl_s = kDefaultClaimTtlS);

// A journal reference: "etcd:ID" (the id in the cluster's etcd) or a path
// ("<dir>/ID.json": the directory state in <dir>).
struct JournalRef {
  bool etcd = false;
  std::string dir, id;
};
Result<JournalRef> parseJournalRef(const std::string& ref);

// The key prefixes in etcd (docs/ETCD.md, key layout).
inline constexpr const char* kNexusPrefix = "/offcore/nexus/v1/";

}  // namespace offcore::volumes
