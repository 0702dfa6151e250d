#include "agent/agent.h"
#include "base/json.h"

#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include <nlohmann/json.hpp>

#include "agent/requests.h"
#include "base/log.h"
#include "base/subprocess.h"

namespace offcore {

using nlohmann::json;

Agent::Agent(Config config, NodeState node, NodeManager nodes)
    : config_(std::move(config)),
      node_(std::move(node)),
      nodes_(std::move(nodes)),
      layout_(NodeLayout::forNode(config_, node_.name)),
      vfs_(layout_.run_dir + "/vfs.json", node_.fabric_index, config_.rx_steering ? node_.soc_cpus : CpuSet{},
           config_.rx_steering ? node_.host_cpus : CpuSet{}, config_.rx_steering_mode == "napi") {}

Agent::~Agent() {
  net_.reset();
  supervisor_.reset();
  api_.reset();
  if (signal_fd_ >= 0) ::close(signal_fd_);
}

namespace {

// CPU time of a service's process and of its reaped children, from
// /proc/PID/stat fields 14-17 (utime, stime, cutime, cstime), in seconds.
double processCpuSeconds(pid_t pid) {
  auto f = procStatFields(pid);
  if (!f.ok() || f->size() < 15) return 0;
  double ticks = 0;
  for (size_t i = 11; i <= 14; ++i) ticks += std::strtod((*f)[i].c_str(), nullptr);
  long hz = ::sysconf(_SC_CLK_TCK);
  return hz > 0 ? ticks / static_cast<double>(hz) : 0;
}

}  // namespace

json Agent::serviceJson(const ServiceStatus& s) {
  json doc{{"name", s.name},           {"state", toString(s.state)},
           {"restarts", s.restarts},   {"pid", s.pid},
           {"last_exit", s.last_exit}, {"argv", s.argv},
           {"cpu_seconds", 0.0},       {"domain", ""}};
  if (!s.part_of.empty()) doc["part_of"] = s.part_of;
  if (s.state != ServiceState::kRunning || s.pid <= 0) return doc;
  doc["cpu_seconds"] = processCpuSeconds(s.pid);
  // Where its CPU is charged: a service may move itself into the host
  // domain (a VM's QEMU does).
  for (auto [domain, cg] : {std::pair{"soc", layout_.cg_soc}, std::pair{"host", layout_.cg_host},
                            std::pair{"host-infra", layout_.cg_host_infra}}) {
    auto pids = nodes_.cgroups().processes(cg);
    if (std::find(pids.begin(), pids.end(), s.pid) != pids.end()) {
      doc["domain"] = domain;
      break;
    }
  }
  return doc;
}

std::string Agent::servicesJson() {
  json arr = json::array();
  for (const auto& s : supervisor_->list()) arr.push_back(serviceJson(s));
  return dumpJson(arr);
}

void Agent::registerCoreRoutes() {
  api_->route("GET", "/v1", [this](const ApiRequest&) {
    json endpoints =
        json::array({"GET /v1/health", "GET /v1/status", "GET /metrics", "POST /v1/shutdown", "GET|POST /v1/services",
                     "GET|DELETE /v1/services/NAME", "GET|POST /v1/vfs", "DELETE /v1/vfs/REPRESENTOR",
                     "POST /v1/net/cni/add", "POST /v1/net/cni/del", "POST /v1/net/cni/check", "GET /v1/net/status"});
    return ApiResponse::json(200, dumpJson(json{{"node", node_.name}, {"endpoints", endpoints}}) + "\n");
  });
  api_->route("GET", "/v1/health", [this](const ApiRequest&) {
    return ApiResponse::json(200, dumpJson(json{{"ok", true}, {"node", node_.name}, {"pid", ::getpid()}}) + "\n");
  });
  api_->route("GET", "/v1/status", [this](const ApiRequest&) {
    auto doc = nodes_.statusJson(node_.name, servicesJson(), vfsToJson(vfs_.list()), "running");
    if (!doc.ok()) return ApiResponse::error(500, doc.error().message);
    return ApiResponse::json(200, *doc);
  });
  api_->route("GET", "/metrics", [this](const ApiRequest&) { return ApiResponse::text(200, renderMetrics()); });
  api_->route("POST", "/v1/shutdown", [this](const ApiRequest& req) {
    auto keep = parseShutdownRequest(req.body);
    if (!keep.ok()) return ApiResponse::error(400, keep.error().message);
    release_services_ = *keep;
    // Reply first; stop on the next loop turn so the response goes out.
    loop_.addTimer(std::chrono::milliseconds(0), [this] { loop_.stop(); });
    return ApiResponse::json(200, "{\"ok\":true}\n");
  });
}

void Agent::registerServiceRoutes() {
  api_->route("GET", "/v1/services",
              [this](const ApiRequest&) { return ApiResponse::json(200, servicesJson() + "\n"); });
  api_->route("GET", "/v1/services/", [this](const ApiRequest& req) {
    auto s = supervisor_->get(req.tail);
    if (!s.ok()) return ApiResponse::error(404, s.error().message);
    return ApiResponse::json(200, dumpJson(serviceJson(*s)) + "\n");
  });
  api_->route("POST", "/v1/services", [this](const ApiRequest& req) {
    auto spec = parseServiceRequest(req.body);
    if (!spec.ok()) return ApiResponse::error(400, spec.error().message);
    auto added = supervisor_->add(*spec);
    if (!added.ok()) return ApiResponse::error(409, added.error().message);
    return ApiResponse::json(201, dumpJson(json{{"name", spec->name}, {"state", "running"}}) + "\n");
  });
  // A new argv for a running service, which hands over to its successor
  // (Supervisor::replace): `volume replica add/remove` on an attached disk.
  api_->route("PUT", "/v1/services/", [this](const ApiRequest& req) {
    auto spec = parseServiceRequest(req.body);
    if (!spec.ok()) return ApiResponse::error(400, spec.error().message);
    if (spec->name != req.tail)
      return ApiResponse::error(400, "the body names service " + spec->name + ", the path " + req.tail);
    auto s = supervisor_->replace(req.tail, spec->argv);
    if (!s.ok()) return ApiResponse::error(404, s.error().message);
    return ApiResponse::json(200, dumpJson(json{{"name", spec->name}, {"state", "handing over"}}) + "\n");
  });
  api_->route("DELETE", "/v1/services/", [this](const ApiRequest& req) {
    auto s = supervisor_->remove(req.tail);
    if (!s.ok()) return ApiResponse::error(404, s.error().message);
    return ApiResponse::json(200, "{\"ok\":true}\n");
  });
}

void Agent::registerVfRoutes() {
  api_->route("GET", "/v1/vfs",
              [this](const ApiRequest&) { return ApiResponse::json(200, vfsToJson(vfs_.list()) + "\n"); });
  api_->route("POST", "/v1/vfs", [this](const ApiRequest& req) {
    auto spec = parseVfRequest(req.body);
    if (!spec.ok()) return ApiResponse::error(400, spec.error().message);
    auto vf = vfs_.add(*spec);
    if (!vf.ok()) return ApiResponse::error(400, vf.error().message);
    auto arr = json::parse(vfsToJson({*vf}));
    return ApiResponse::json(201, dumpJson(arr[0]) + "\n");
  });
  api_->route("DELETE", "/v1/vfs/", [this](const ApiRequest& req) {
    auto s = vfs_.remove(req.tail);
    if (!s.ok()) return ApiResponse::error(404, s.error().message);
    return ApiResponse::json(200, "{\"ok\":true}\n");
  });
}

std::string Agent::renderMetrics() {
  metrics_.describe("offcore_agent_up", "gauge", "1 while the SoC agent serves its API");
  metrics_.set("offcore_agent_up", {{"node", node_.name}}, 1);
  metrics_.describe("offcore_domain_cpu_seconds_total", "counter", "CPU time charged to a domain's cgroup");
  metrics_.describe("offcore_domain_memory_bytes", "gauge", "memory charged to a domain's cgroup");
  for (auto [domain, cg] : {std::pair{"soc", layout_.cg_soc}, std::pair{"host", layout_.cg_host},
                            std::pair{"host-infra", layout_.cg_host_infra}}) {
    auto u = nodes_.cgroups().usage(cg);
    if (!u.ok()) continue;
    metrics_.set("offcore_domain_cpu_seconds_total", {{"node", node_.name}, {"domain", domain}}, u->cpu_seconds);
    metrics_.set("offcore_domain_memory_bytes", {{"node", node_.name}, {"domain", domain}},
                 static_cast<double>(u->memory_bytes));
  }
  metrics_.describe("offcore_service_up", "gauge", "1 while a supervised service runs");
  metrics_.describe("offcore_service_restarts_total", "counter", "restarts of a supervised service");
  for (const auto& s : supervisor_->list()) {
    metrics_.set("offcore_service_up", {{"node", node_.name}, {"service", s.name}},
                 s.state == ServiceState::kRunning ? 1 : 0);
    metrics_.set("offcore_service_restarts_total", {{"node", node_.name}, {"service", s.name}}, s.restarts);
  }
  metrics_.describe("offcore_vfs", "gauge", "VFs attached to the node");
  metrics_.set("offcore_vfs", {{"node", node_.name}}, static_cast<double>(vfs_.list().size()));
  return metrics_.renderText();
}

Status Agent::run() {
  OC_TRY(loop_.init());
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  ::sigprocmask(SIG_BLOCK, &mask, nullptr);
  signal_fd_ = ::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  if (signal_fd_ < 0) return errnoError("signalfd");
  OC_TRY(loop_.watchFd(signal_fd_, EPOLLIN, [this](uint32_t) {
    signalfd_siginfo info;
    while (::read(signal_fd_, &info, sizeof info) == sizeof info) {
      spdlog::info("signal {}: shutting down", info.ssi_signo);
      loop_.stop();
    }
  }));

  if (auto s = vfs_.load(); !s.ok()) spdlog::warn("VF state: {}", s.error().message);
  supervisor_ = std::make_unique<Supervisor>(loop_, layout_.run_dir, layout_.run_dir + "/services.json");
  // A restarted agent takes over the services its predecessor ran.
  if (auto adopted = supervisor_->adoptRecorded(); !adopted.ok()) {
    spdlog::error("services: {}", adopted.error().message);
  } else if (*adopted > 0) {
    spdlog::info("adopted {} running services", *adopted);
  }
  api_ = std::make_unique<ApiServer>(loop_);
  registerCoreRoutes();
  registerServiceRoutes();
  registerVfRoutes();
  // Pod networking needs BPF and the cluster state; a node without them
  // still serves storage and images, so a failure here is not fatal.
  net_ = std::make_unique<NetController>(loop_, config_, node_, layout_, vfs_);
  if (auto s = net_->start(); !s.ok()) net_->failed(s.error());
  net_->registerRoutes(*api_);
  if (auto listening = api_->listenUnix(layout_.api_socket); !listening.ok()) {
    // Whatever this agent adopted stays up for the next attempt.
    supervisor_->releaseAll();
    return listening;
  }
  spdlog::info("agent for node {} serving {}", node_.name, layout_.api_socket);

  Status ran = loop_.run();
  if (release_services_) {
    supervisor_->releaseAll();
  } else {
    supervisor_->stopAll(std::chrono::milliseconds(2000));
  }
  spdlog::info("agent for node {} stopped", node_.name);
  return ran;
}

}  // namespace offcore
