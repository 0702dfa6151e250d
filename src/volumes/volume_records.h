// VolumeRecords: where replicated volumes are recorded (name -> the JSON the
// CLI's volume commands read and write), and the lock that serialises
// changes to them. Two Impls: a directory (<cluster_dir>/volumes/NAME.json,
// 0600, and a flock on its .lock: one machine) and etcd (one key per volume
// under /offcore/volumes/v1/records/, the lock a key under a lease: the
// cluster). The text is opaque here; the CLI parses it.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "kv/kv.h"

namespace offcore::volumes {

// Held for its life; dropping it lets the next change go.
class VolumesLock {
 public:
  virtual ~VolumesLock() = default;
};

class VolumeRecords {
 public:
  virtual ~VolumeRecords() = default;
  // nullopt: no such volume.
  virtual Result<std::optional<std::string>> get(const std::string& name) = 0;
  virtual Result<std::vector<std::string>> names() = 0;  // sorted
  // While this store holds the lock, a put or remove is refused once the
  // lock is no longer its own (etcd: its lease ran out).
  virtual Status put(const std::string& name, const std::string& text) = 0;
  virtual Status remove(const std::string& name) = 0;
  // Waits (up to `wait_s` seconds) until no other holder changes volumes.
  // `who` names the holder in a refusal.
  virtual Result<std::unique_ptr<VolumesLock>> lock(const std::string& who, int wait_s = 120) = 0;
  virtual std::string location() const = 0;
};

std::unique_ptr<VolumeRecords> makeDirVolumeRecords(std::string dir);
std::unique_ptr<VolumeRecords> makeKvVolumeRecords(std::shared_ptr<kv::KvClient> kv);

inline constexpr const char* kVolumesPrefix = "/offcore/volumes/v1/";

}  // namespace offcore::volumes
