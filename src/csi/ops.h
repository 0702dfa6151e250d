// The CSI driver's two plug-in interfaces (csi/README.md): what the gRPC
// services (csi/service.h) call once a request has been checked against
// the spec. ControllerOps makes, removes and publishes volumes and
// snapshots; NodeOps stages and publishes them on one node. Neither sees a
// protobuf: the services translate.
//
// Errors: an Error's code (an errno value) picks the gRPC status the
// service returns, so the spec's codes are chosen here, in one place:
//   ENOENT -> NOT_FOUND        EEXIST -> ALREADY_EXISTS
//   EINVAL -> INVALID_ARGUMENT ERANGE -> OUT_OF_RANGE
//   EBUSY  -> FAILED_PRECONDITION  ENOSPC -> RESOURCE_EXHAUSTED
//   EAGAIN -> ABORTED          anything else -> INTERNAL
//
// Threading: the services call from gRPC's thread pool, never two calls for
// the same volume (or snapshot, or name) at once: a second one is refused
// with ABORTED before it reaches the ops. Calls for different volumes run
// concurrently; an implementation guards what they share.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"

namespace offcore::csi {

using StringMap = std::map<std::string, std::string>;

enum class AccessType { kMount, kBlock };

// The spec's access modes, by their numbers.
enum class AccessMode {
  kUnknown = 0,
  kSingleNodeWriter = 1,
  kSingleNodeReaderOnly = 2,
  kMultiNodeReaderOnly = 3,
  kMultiNodeSingleWriter = 4,
  kMultiNodeMultiWriter = 5,
  kSingleNodeSingleWriter = 6,
  kSingleNodeMultiWriter = 7,
};

struct Capability {
  AccessType type = AccessType::kMount;
  AccessMode mode = AccessMode::kUnknown;
  std::string fs_type;  // mount only; "" = the plug-in's default
  std::vector<std::string> mount_flags;
  bool operator==(const Capability&) const = default;
};

struct VolumeSpec {
  std::string name;
  uint64_t size_bytes = 0;      // what to make: chosen by the service from the capacity range
  uint64_t required_bytes = 0;  // the range as asked (0: unset); an existing volume of this
  uint64_t limit_bytes = 0;     // name is compatible when its capacity is within it
  StringMap parameters;
  std::string source_snapshot;  // at most one of the two
  std::string source_volume;
  std::vector<Capability> capabilities;
};

struct VolumeInfo {
  std::string id;
  uint64_t capacity_bytes = 0;
  StringMap context;
  std::string source_snapshot, source_volume;
  std::vector<std::string> published_nodes;
  bool abnormal = false;  // the volume condition
  std::string condition;
};

struct SnapshotInfo {
  std::string id;
  std::string source_volume_id;
  uint64_t size_bytes = 0;
  int64_t created_unix_ns = 0;
  bool ready = true;
};

class ControllerOps {
 public:
  virtual ~ControllerOps() = default;
  // Idempotent by name: a volume of that name whose capacity is within the
  // range, with the same parameters and source, is returned; otherwise
  // EEXIST. ENOENT: the source (a deleted snapshot included).
  virtual Result<VolumeInfo> createVolume(const VolumeSpec& spec) = 0;
  // A volume that is not there is deleted (OK). EBUSY: published or attached.
  virtual Status deleteVolume(const std::string& id) = 0;
  virtual Result<VolumeInfo> getVolume(const std::string& id) = 0;  // ENOENT
  virtual Result<std::vector<VolumeInfo>> listVolumes() = 0;        // in a stable order
  // ENOENT: the volume or the node. EEXIST: published there differently.
  // EBUSY: published on another node (the message names it).
  virtual Result<StringMap> publish(const std::string& id, const std::string& node, bool readonly,
                                    const Capability& cap) = 0;
  virtual Status unpublish(const std::string& id, const std::string& node) = 0;  // "" node: everywhere
  // Idempotent by name like createVolume; EEXIST: the name is a snapshot of another volume.
  virtual Result<SnapshotInfo> createSnapshot(const std::string& source_volume, const std::string& name) = 0;
  virtual Status deleteSnapshot(const std::string& id) = 0;       // absent: OK; EBUSY: in use
  virtual Result<std::vector<SnapshotInfo>> listSnapshots() = 0;  // in a stable order
  // Grows to at least `size` (at most `limit`, 0 = none); returns the new capacity.
  virtual Result<uint64_t> expandVolume(const std::string& id, uint64_t size, uint64_t limit) = 0;
  // What one more volume of these parameters could take.
  struct Capacity {
    uint64_t available = 0;
    uint64_t maximum_volume = 0;
  };
  virtual Result<Capacity> capacity(const StringMap& parameters) = 0;
  // EINVAL with the reason when these parameters or capabilities cannot be served.
  virtual Status checkParameters(const StringMap& parameters) = 0;
  virtual Status checkCapability(const Capability& cap) = 0;
};

struct StageRequest {
  std::string volume_id;
  std::string staging_path;
  Capability capability;
  StringMap publish_context, volume_context;
};

struct PublishRequest {
  std::string volume_id;
  std::string staging_path;
  std::string target_path;
  Capability capability;
  bool readonly = false;
  StringMap publish_context, volume_context;
};

struct VolumeStats {
  bool block = false;
  uint64_t total_bytes = 0, used_bytes = 0, available_bytes = 0;
  uint64_t total_inodes = 0, used_inodes = 0, available_inodes = 0;
  bool abnormal = false;
  std::string condition;
};

struct NodeInfo {
  std::string node_id;
  int64_t max_volumes = 0;  // 0: no limit
  StringMap topology;
};

class NodeOps {
 public:
  virtual ~NodeOps() = default;
  // Idempotent: staged the same way again is OK; staged at another path or
  // with another capability is EEXIST. ENOENT: no such volume.
  virtual Status stage(const StageRequest& req) = 0;
  virtual Status unstage(const std::string& volume_id, const std::string& staging_path) = 0;  // not staged: OK
  // The spec's table: the same target again OK, the same target with other
  // arguments EEXIST, another target EBUSY unless the mode allows several.
  // EBUSY also: not staged at staging_path.
  virtual Status publish(const PublishRequest& req) = 0;
  virtual Status unpublish(const std::string& volume_id, const std::string& target_path) = 0;  // not there: OK
  // ENOENT: the path holds no published or staged volume of that id.
  virtual Result<VolumeStats> stats(const std::string& volume_id, const std::string& path) = 0;
  virtual Result<uint64_t> expand(const std::string& volume_id, const std::string& path, uint64_t size) = 0;
  virtual NodeInfo info() = 0;
  virtual Status checkCapability(const Capability& cap) = 0;
};

}  // namespace offcore::csi
