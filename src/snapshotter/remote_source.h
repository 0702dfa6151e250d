// RemoteSource: where the snapshotter gets layers it never unpacks. The
// snapshotter (grpc + metadata) is generic; this small interface is the only
// thing it knows about lazily loaded images. The production implementation
// (image/remote_source_impl.*) asks the node's image service to attach a
// layer's block file and mounts it; a snapshotter with no remote source is a
// plain overlayfs snapshotter.
//
// Threading: calls come from gRPC worker threads, possibly concurrently for
// different chain IDs; implementations serialise what they must.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "base/result.h"

namespace offcore {

using SnapshotLabels = std::map<std::string, std::string>;

enum class RemoteMode { kLayered, kFlat };

// What lookup() found: enough to mount the layer later, also after a restart
// of the snapshotter (it is stored in the snapshotter's metadata).
struct RemoteLayerRef {
  std::string chain_id;  // "sha256:..."
  RemoteMode mode = RemoteMode::kLayered;
  std::string handle;  // opaque to the snapshotter; persisted verbatim
};

class RemoteSource {
 public:
  virtual ~RemoteSource() = default;

  // Called from Prepare during unpack with the target chain ID (the
  // containerd.io/snapshot.ref label) and every label containerd passed
  // (CRI's containerd.io/snapshot/cri.* labels when present). nullopt means
  // "not converted": the snapshotter falls back to a normal overlay
  // snapshot and containerd applies the layer itself.
  virtual Result<std::optional<RemoteLayerRef>> lookup(const std::string& chain_id, const SnapshotLabels& labels) = 0;

  // Layered mode: makes the layer's filesystem (overlay form: whiteouts are
  // 0/0 char devices, opaque dirs carry trusted.overlay.opaque) readable as
  // a directory and returns it. Idempotent and cheap when already mounted;
  // the snapshotter calls it on every Mounts/Prepare/View that needs the
  // layer, so it also re-establishes mounts after a restart.
  virtual Result<std::string> mountLayer(const RemoteLayerRef& layer) = 0;

  // Flat mode: creates a writable (or read-only, for View) root filesystem
  // for snapshot `snapshot_id` from the flattened image at `top` and returns
  // the mounted directory. Idempotent for the same snapshot_id.
  virtual Result<std::string> prepareFlatRootfs(const std::string& snapshot_id, const RemoteLayerRef& top,
                                                bool read_only) = 0;

  // Releases what prepareFlatRootfs made (unmount, detach, delete the clone).
  virtual Status removeFlatRootfs(const std::string& snapshot_id) = 0;

  // Releases a layered-mode layer no snapshot uses any more.
  virtual Status releaseLayer(const RemoteLayerRef& layer) = 0;

  // Called when a remote snapshot is committed (during a pull): the source
  // may make the layer (layered) or a rootfs (flat) ready in the background,
  // so the first container does not wait for it. `parent` is the remote
  // snapshot it was committed on, if any: a flat image's lower chains are
  // not where its containers start. Must not block.
  virtual void warmLayer(const RemoteLayerRef& layer, const std::optional<RemoteLayerRef>& parent) {
    (void)layer;
    (void)parent;
  }

  // Called on Commit of an active snapshot. A client that passes no target
  // label (containerd 1.6's `ctr image pull` unpacks with image.Unpack)
  // applies a lazy image's stub layer — one small marker file — into an
  // ordinary snapshot; this recognises that upper dir and returns the remote
  // layer the committed snapshot stands for. nullopt: an ordinary layer.
  // `name` is the committed snapshot's name (containerd's chain ID of the
  // stub chain, behind its namespace prefix).
  virtual Result<std::optional<RemoteLayerRef>> adoptStub(const std::string& upper_dir, const std::string& name) {
    (void)upper_dir;
    (void)name;
    return std::optional<RemoteLayerRef>();
  }
};

}  // namespace offcore
