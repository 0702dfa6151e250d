// SnapshotterServer: serves a Snapshotter as containerd's Snapshots gRPC
// service on a unix socket, for `[proxy_plugins.NAME] type = "snapshot"`.
#pragma once

#include <memory>
#include <string>

#include "base/result.h"
#include "snapshotter/snapshotter.h"

namespace offcore {

class SnapshotterServer {
 public:
  virtual ~SnapshotterServer() = default;
  // Listens on socket_path (mode 0660). A stale socket left by a killed
  // snapshotter is replaced; a live one is an error.
  virtual Status start(const std::string& socket_path) = 0;
  // Stops accepting, lets in-flight calls finish (a few seconds at most)
  // and removes the socket. Idempotent.
  virtual void shutdown() = 0;
};

std::unique_ptr<SnapshotterServer> makeSnapshotterServer(std::unique_ptr<Snapshotter> snapshotter);

}  // namespace offcore
