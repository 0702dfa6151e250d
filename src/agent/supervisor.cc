#include "agent/supervisor.h"

#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <thread>

#include "base/log.h"
#include "base/subprocess.h"

namespace offcore {

struct Supervisor::Service {
  ServiceSpec spec;
  ServiceStatus status;
  int pidfd = -1;
  std::chrono::milliseconds backoff = kInitialBackoff;
  std::chrono::steady_clock::time_point started_at;
  EventLoop::TimerId restart_timer = 0;
};

const char* toString(ServiceState state) {
  switch (state) {
    case ServiceState::kStarting: return "starting";
    case ServiceState::kRunning: return "running";
    case ServiceState::kBackoff: return "backoff";
    case ServiceState::kExited: return "exited";
    case ServiceState::kFailed: return "failed";
  }
  return "unknown";
}

Supervisor::Supervisor(EventLoop& loop, std::string log_dir) : loop_(loop), log_dir_(std::move(log_dir)) {}

Supervisor::~Supervisor() { stopAll(std::chrono::milliseconds(2000)); }

static bool validServiceName(const std::string& n) {
  if (n.empty() || n.size() > 64) return false;
  return std::all_of(n.begin(), n.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
  });
}

Status Supervisor::add(const ServiceSpec& spec) {
  if (!validServiceName(spec.name)) {
    return makeError("bad service name '" + spec.name + "' (use 1-64 of a-z, 0-9, '-', '_', '.')");
  }
  if (spec.argv.empty()) return makeError("service '" + spec.name + "' has an empty argv");
  if (services_.count(spec.name)) {
    return makeError("service '" + spec.name + "' already exists (remove it first)");
  }
  auto s = std::make_unique<Service>();
  s->spec = spec;
  s->status.name = spec.name;
  s->status.argv = spec.argv;
  Service& ref = *s;
  services_[spec.name] = std::move(s);
  start(ref);
  if (ref.status.state == ServiceState::kFailed) {
    Error e = makeError("service '" + spec.name + "' could not start; see " + log_dir_ + "/" + spec.name + ".log");
    services_.erase(spec.name);
    return e;
  }
  return okStatus();
}

void Supervisor::start(Service& s) {
  s.restart_timer = 0;
  SpawnOptions opts;
  opts.output_file = log_dir_ + "/" + s.spec.name + ".log";
  auto pid = spawn(s.spec.argv, opts);
  if (!pid.ok()) {
    spdlog::error("service {}: {}", s.spec.name, pid.error().message);
    s.status.state = ServiceState::kFailed;
    return;
  }
  s.status.pid = *pid;
  s.status.state = ServiceState::kRunning;
  s.started_at = std::chrono::steady_clock::now();
  // A pidfd turns "child exited" into an fd event on our loop, without
  // SIGCHLD handlers and without racing other children's reaping.
  s.pidfd = static_cast<int>(::syscall(SYS_pidfd_open, *pid, 0));
  if (s.pidfd < 0) {
    spdlog::error("service {}: pidfd_open: {}", s.spec.name, std::strerror(errno));
    return;
  }
  std::string name = s.spec.name;
  auto watched = loop_.watchFd(s.pidfd, EPOLLIN, [this, name](uint32_t) { onExit(name); });
  if (!watched.ok()) spdlog::error("service {}: {}", name, watched.error().message);
  spdlog::info("service {} started, pid {}", name, *pid);
}

void Supervisor::onExit(const std::string& name) {
  auto it = services_.find(name);
  if (it == services_.end()) return;
  Service& s = *it->second;
  loop_.unwatchFd(s.pidfd);
  ::close(s.pidfd);
  s.pidfd = -1;
  auto code = waitExit(s.status.pid);
  s.status.last_exit = code.valueOr(-1);
  s.status.pid = 0;
  spdlog::warn("service {} exited with {}", name, s.status.last_exit);
  if (!s.spec.restart && s.status.last_exit == 0) {
    s.status.state = ServiceState::kExited;
    return;
  }
  scheduleRestart(s);
}

void Supervisor::scheduleRestart(Service& s) {
  auto ran_for = std::chrono::steady_clock::now() - s.started_at;
  if (ran_for >= kStableAfter) s.backoff = kInitialBackoff;
  s.status.state = ServiceState::kBackoff;
  std::string name = s.spec.name;
  s.restart_timer = loop_.addTimer(s.backoff, [this, name] {
    auto it = services_.find(name);
    if (it == services_.end()) return;
    it->second->status.restarts++;
    start(*it->second);
  });
  s.backoff = std::min(s.backoff * 2, kMaxBackoff);
}

static void terminate(pid_t pid, int pidfd, std::chrono::milliseconds grace) {
  ::kill(pid, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + grace;
  while (std::chrono::steady_clock::now() < deadline) {
    if (::waitpid(pid, nullptr, WNOHANG) == pid) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  (void)pidfd;
}

Status Supervisor::remove(const std::string& name) {
  auto it = services_.find(name);
  if (it == services_.end()) return makeError("no service '" + name + "'");
  Service& s = *it->second;
  if (s.restart_timer) loop_.cancelTimer(s.restart_timer);
  if (s.pidfd >= 0) {
    loop_.unwatchFd(s.pidfd);
    terminate(s.status.pid, s.pidfd, std::chrono::milliseconds(2000));
    ::close(s.pidfd);
  }
  services_.erase(it);
  return okStatus();
}

std::vector<ServiceStatus> Supervisor::list() const {
  std::vector<ServiceStatus> out;
  for (const auto& [_, s] : services_) out.push_back(s->status);
  return out;
}

Result<ServiceStatus> Supervisor::get(const std::string& name) const {
  auto it = services_.find(name);
  if (it == services_.end()) return makeError("no service '" + name + "'");
  return it->second->status;
}

void Supervisor::stopAll(std::chrono::milliseconds grace) {
  for (auto& [_, s] : services_) {
    if (s->restart_timer) loop_.cancelTimer(s->restart_timer);
    s->restart_timer = 0;
    if (s->pidfd >= 0) ::kill(s->status.pid, SIGTERM);
  }
  for (auto& [_, s] : services_) {
    if (s->pidfd < 0) continue;
    loop_.unwatchFd(s->pidfd);
    terminate(s->status.pid, s->pidfd, grace);
    ::close(s->pidfd);
    s->pidfd = -1;
    s->status.pid = 0;
    s->status.state = ServiceState::kExited;
  }
}

}  // namespace offcore
