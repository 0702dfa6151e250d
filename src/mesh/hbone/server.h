// HboneServer: the node proxy's HBONE listener (port 15008 on the node's
// fabric address). Each TLS connection is one HTTP/2 session; each CONNECT
// stream goes to the handler with its TunnelRequest (target, forwarded
// source, the client's verified SPIFFE ID).
//
// Bounds, so that a flood of idle or slow TLS clients cannot grow memory:
// max_connections (more are accepted and closed at once), a handshake
// timeout, an idle timeout (no stream), max concurrent streams per
// connection (HTTP/2 SETTINGS, excess refused), and per-stream windows.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "base/event_loop.h"
#include "mesh/hbone/h2_conn.h"
#include "mesh/tls/tls_context.h"

namespace offcore::mesh::hbone {

class HboneServer {
 public:
  struct Options {
    std::string ip = "0.0.0.0";
    uint16_t port = 15008;  // 0 = any (tests)
    size_t max_connections = 1024;
    H2Options h2;
    // >= 0: a bound, listening socket to adopt instead of binding ip:port
    // (hot restart: the mesh keeper owns it).
    int listen_fd = -1;
  };
  using Handler = H2Conn::RequestHandler;

  // `contexts` (this node's certificates) must outlive the server.
  HboneServer(EventLoop& loop, tls::TlsContextSource& contexts, Options options, Handler handler);
  ~HboneServer();
  HboneServer(const HboneServer&) = delete;
  HboneServer& operator=(const HboneServer&) = delete;

  Status start();
  // Stop accepting new connections (a successor took over); open ones go on.
  void stopAccepting();
  uint16_t port() const { return port_; }
  size_t connectionCount() const { return conns_.size(); }
  uint64_t refusedConnections() const { return refused_; }

 private:
  void onAccept();

  EventLoop& loop_;
  tls::TlsContextSource& contexts_;
  Options options_;
  Handler handler_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::map<H2Conn*, std::shared_ptr<H2Conn>> conns_;
  uint64_t refused_ = 0;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace offcore::mesh::hbone
