// HboneConnector: the Connector for mesh destinations on other nodes. It
// keeps one mTLS HTTP/2 connection per (node_ip:port, source identity, peer
// identity) and opens a CONNECT stream per upstream connection:
//   :authority = <target ip>:<port>, forwarded: for=<source_ip> (when set).
// The stream is handed over once the peer proxy answered 200.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "base/event_loop.h"
#include "mesh/hbone/h2_conn.h"
#include "mesh/tls/tls_context.h"
#include "mesh/transport.h"

namespace offcore::mesh::hbone {

class HboneConnector : public Connector {
 public:
  struct Options {
    uint16_t port = 15008;  // the peer proxies' HBONE port
    std::string local_ip;   // bind to this address (the node's fabric address); "" = any
    H2Options h2;
  };

  // `contexts` (this node's certificates) must outlive the connector.
  HboneConnector(EventLoop& loop, tls::TlsContextSource& contexts, Options options);
  ~HboneConnector() override;

  // target.node_ip, peer_identity and source_identity must be set.
  void connect(const ConnectTarget& target, Millis timeout, Done done) override;
  size_t connectionCount() const { return pool_.size(); }

 private:
  Result<std::shared_ptr<H2Conn>> dial(const ConnectTarget& target, const std::string& key);

  EventLoop& loop_;
  tls::TlsContextSource& contexts_;
  Options options_;
  std::map<std::string, std::shared_ptr<H2Conn>> pool_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace offcore::mesh::hbone
