// VhostUserServer: the back end's side of a vhost-user unix socket. It
// accepts one front end (QEMU) at a time — a second connection waits in the
// listen backlog until the first one ends — speaks the protocol
// (protocol.h), maps guest memory, and runs one thread per started queue
// that serves the device (device.h).
//
// A disconnect or a protocol error from the front end stops every queue,
// unmaps guest memory and goes back to accept: QEMU started with
// `-chardev socket,...,reconnect=1` comes back and sets everything up again.
#pragma once

#include <memory>
#include <string>

#include "base/result.h"
#include "virt/vhost/device.h"

namespace offcore::virt {

class VhostUserServer {
 public:
  virtual ~VhostUserServer() = default;

  // Listens on path (mode 0600). A stale socket file is replaced; one another
  // back end still answers on is an error. The device must outlive the server.
  static Result<std::unique_ptr<VhostUserServer>> listen(const std::string& path, VhostDevice& device);

  // Serves front ends until stop(); returns an error only when the listening
  // socket itself fails. Call from one thread.
  virtual Status run() = 0;
  // From any thread: run() ends the current connection (queues drained and
  // stopped) and returns. The socket file is removed when the server is destroyed.
  virtual void stop() = 0;
};

}  // namespace offcore::virt
