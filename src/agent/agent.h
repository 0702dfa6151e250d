// The SoC agent (`offcore agent --name N`): the node's supervisor and API
// channel. `dpu up` starts it inside the SoC domain, so it and every service
// it runs are accounted to the SoC.
//
// Threading: one loop thread owns everything here (docs/CONCURRENCY.md).
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "agent/supervisor.h"
#include "api/api_server.h"
#include "base/config.h"
#include "base/event_loop.h"
#include "base/metrics.h"
#include "dpu/node.h"
#include "dpu/vf.h"
#include "netctl/net_controller.h"

namespace offcore {

class Agent {
 public:
  Agent(Config config, NodeState node, NodeManager nodes);
  ~Agent();

  // Binds the API socket, registers every subsystem's routes, then runs
  // until SIGTERM/SIGINT or POST /v1/shutdown.
  Status run();

 private:
  // Explicit registration, one function per subsystem: no static magic.
  void registerCoreRoutes();
  void registerServiceRoutes();
  void registerVfRoutes();
  std::string servicesJson();
  // One service with its CPU seconds and the domain its process is charged to.
  nlohmann::json serviceJson(const ServiceStatus& s);
  std::string renderMetrics();

  Config config_;
  NodeState node_;
  NodeManager nodes_;
  NodeLayout layout_;
  EventLoop loop_;
  std::unique_ptr<ApiServer> api_;
  std::unique_ptr<Supervisor> supervisor_;
  VfManager vfs_;
  std::unique_ptr<NetController> net_;  // pod networking and Services
  MetricsRegistry metrics_;
  int signal_fd_ = -1;
  // Set by a shutdown for an agent restart: services keep running for the
  // next agent to adopt.
  bool release_services_ = false;
};

}  // namespace offcore
