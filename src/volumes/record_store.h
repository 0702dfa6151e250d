// RecordStore: named JSON records of one kind (replicated volumes, the CSI
// driver's catalog, VMs) and the lock that serialises changes to them. Two
// Impls: a directory (<cluster_dir>/<kind>/NAME.json, 0600, and a flock on
// its .lock: one machine) and etcd (one key per record under
// /offcore/<kind>/v1/records/, the lock a key under a lease: the cluster).
// The text is opaque here; the callers parse it.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "kv/kv.h"

namespace offcore::volumes {

// What a store holds: where (a folder of the cluster directory, a prefix in
// etcd) and how its messages name a record.
struct RecordKind {
  const char* folder;  // <cluster_dir>/<folder>/NAME.json
  const char* prefix;  // <prefix>records/NAME, <prefix>lock
  const char* noun;    // "replicated volume"
  const char* plural;  // "replicated volumes"
};

inline constexpr RecordKind kVolumeRecords{"volumes", "/offcore/volumes/v1/", "replicated volume",
                                           "replicated volumes"};
inline constexpr RecordKind kCsiRecords{"csi", "/offcore/csi/v1/", "CSI catalog entry", "CSI catalog entries"};
inline constexpr RecordKind kVmRecords{"vms", "/offcore/vms/v1/", "VM", "VMs"};

// Held for its life; dropping it lets the next change go.
class RecordLock {
 public:
  virtual ~RecordLock() = default;
};

// Names are one path segment (no '/', not empty, not "." or ".."): callers
// check their own rules first; the store refuses the rest with EINVAL.
class RecordStore {
 public:
  virtual ~RecordStore() = default;
  // nullopt: no such record.
  virtual Result<std::optional<std::string>> get(const std::string& name) = 0;
  virtual Result<std::vector<std::string>> names() = 0;  // sorted
  // While this store holds the lock, a put, create or remove is refused
  // once the lock is no longer its own (etcd: its lease ran out).
  virtual Status put(const std::string& name, const std::string& text) = 0;
  // A put that never replaces: EEXIST when the name is taken (two racing
  // creators: one wins).
  virtual Status create(const std::string& name, const std::string& text) = 0;
  virtual Status remove(const std::string& name) = 0;  // absent: ok
  // Waits (up to `wait_s` seconds) until no other holder changes records
  // of this kind. `who` names the holder in a refusal.
  virtual Result<std::unique_ptr<RecordLock>> lock(const std::string& who, int wait_s = 120) = 0;
  virtual std::string location() const = 0;
};

std::unique_ptr<RecordStore> makeDirRecordStore(std::string dir, const RecordKind& kind);
std::unique_ptr<RecordStore> makeKvRecordStore(std::shared_ptr<kv::KvClient> kv, const RecordKind& kind);

// EINVAL unless `name` is one path segment.
Status checkRecordName(const std::string& name, const RecordKind& kind);

}  // namespace offcore::volumes
