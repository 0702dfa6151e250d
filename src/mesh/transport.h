// Transport: one byte stream of the proxy, owned by one EventLoop thread. A
// plain TCP socket (TcpTransport) and a tunnelled stream (an HBONE CONNECT
// stream inside an mTLS HTTP/2 connection) both implement it, so the L4 pump
// and the HTTP proxy never care which one they hold.
//
// Callbacks run on the owner loop's thread. After onClosed() nothing else is
// called and the Transport may be destroyed (not from inside a callback:
// post the destruction to the loop).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "base/result.h"
#include "mesh/config/model.h"

namespace offcore::mesh {

class Transport {
 public:
  class Callbacks {
   public:
    virtual ~Callbacks() = default;
    virtual void onData(std::string_view bytes) = 0;
    // The peer finished sending (FIN / END_STREAM); writing may go on.
    virtual void onEnd() = 0;
    // Gone (both directions done, reset, or error). Last callback.
    virtual void onClosed(const Status& why) = 0;
    // The write buffer fell below the low watermark after a high one.
    virtual void onDrained() {}
  };

  virtual ~Transport() = default;
  virtual void setCallbacks(Callbacks* callbacks) = 0;
  // Buffers what the kernel does not take at once; never blocks.
  virtual void write(std::string_view bytes) = 0;
  virtual size_t pendingWrite() const = 0;
  // Backpressure: stop/resume delivering onData.
  virtual void pauseReading(bool paused) = 0;
  // Half-close after the buffered bytes are sent.
  virtual void endWrite() = 0;
  // Abort now (TCP RST / RST_STREAM).
  virtual void reset() = 0;
  // The peer's SPIFFE ID when the transport is mTLS-authenticated, else "".
  virtual std::string peerIdentity() const { return {}; }
  // Addresses as "ip:port" (for a TPROXY-accepted socket, local is the
  // original destination).
  virtual std::string localAddress() const = 0;
  virtual std::string remoteAddress() const = 0;
};

// Where an upstream connection goes and how.
struct ConnectTarget {
  std::string ip;  // the destination pod / endpoint
  uint16_t port = 0;
  std::string source_ip;  // connect from this address (IP_TRANSPARENT); "" = the SoC's own
  // Set when the destination is a mesh pod on another node: tunnel through
  // that node's proxy (HBONE) at node_ip, and require its identity.
  std::string node_ip;
  std::string peer_identity;    // the destination workload's SPIFFE ID
  std::string source_identity;  // the client workload's SPIFFE ID (picks our certificate)
};

// Makes upstream transports. done runs on the caller's loop, exactly once.
class Connector {
 public:
  using Done = std::function<void(Result<std::unique_ptr<Transport>>)>;
  virtual ~Connector() = default;
  virtual void connect(const ConnectTarget& target, Millis timeout, Done done) = 0;
};

}  // namespace offcore::mesh
