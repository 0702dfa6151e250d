// RoutingConnector: the proxy's one upstream Connector. A target on another
// node (node_ip set: a mesh pod there) goes through HBONE to that node's
// proxy; everything else is a direct TCP connect from the client's address.
#pragma once

#include "mesh/transport.h"

namespace offcore::mesh {

class RoutingConnector : public Connector {
 public:
  RoutingConnector(Connector& direct, Connector& tunnel) : direct_(direct), tunnel_(tunnel) {}
  void connect(const ConnectTarget& target, Millis timeout, Done done) override {
    (target.node_ip.empty() ? direct_ : tunnel_).connect(target, timeout, std::move(done));
  }

 private:
  Connector& direct_;
  Connector& tunnel_;
};

}  // namespace offcore::mesh
