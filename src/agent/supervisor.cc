#include "agent/supervisor.h"

#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "agent/services_record.h"
#include "base/files.h"
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
  uint64_t start_ticks = 0;  // /proc/PID/stat starttime: tells our process from a reused pid
  bool adopted = false;      // started by an earlier agent: not our child, exit code unknown
  bool handover = false;     // replace() asked it to exit: restart at once
};

namespace {

int openPidfd(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

bool waitPidfd(int pidfd, std::chrono::milliseconds timeout) {
  pollfd p{pidfd, POLLIN, 0};
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    int n = ::poll(&p, 1, static_cast<int>(std::max<int64_t>(left.count(), 0)));
    if (n > 0) return true;
    if (n == 0 || errno != EINTR) return false;
  }
}

#ifndef P_PIDFD
#define P_PIDFD 3  // linux/wait.h; older glibc headers lack it
#endif

// Reaps exactly the process behind the pidfd if it is our child and has
// exited; a plain waitpid(pid) could take a newer child that reused the pid
// of an adopted process init already reaped. Returns its exit code, -1 when
// unknown (not our child).
int reapExitCode(int pidfd) {
  siginfo_t info{};
  if (::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd), &info, WEXITED | WNOHANG) != 0 ||
      info.si_pid == 0) {
    return -1;
  }
  return info.si_code == CLD_EXITED ? info.si_status : 128 + info.si_status;
}

// SIGTERM, then SIGKILL after grace. Works for adopted processes too (not
// our children): the pidfd says when it is gone.
void terminate(const std::string& name, int pidfd, std::chrono::milliseconds grace) {
  ::syscall(SYS_pidfd_send_signal, pidfd, SIGTERM, nullptr, 0);
  if (!waitPidfd(pidfd, grace)) {
    ::syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
    // Only uninterruptible sleep (a stuck FUSE or disk request) outlasts
    // SIGKILL; say so rather than block the loop for good.
    if (!waitPidfd(pidfd, std::chrono::milliseconds(5000))) {
      spdlog::error("service {} survived SIGKILL for 5 s (uninterruptible sleep?); leaving it", name);
      return;
    }
  }
  (void)reapExitCode(pidfd);
}

}  // namespace

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

Supervisor::Supervisor(EventLoop& loop, std::string log_dir, std::string state_file)
    : loop_(loop), log_dir_(std::move(log_dir)), state_file_(std::move(state_file)) {}

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
  if (!spec.part_of.empty() && (!validServiceName(spec.part_of) || spec.part_of == spec.name)) {
    return makeError("service '" + spec.name + "': part_of must name another service, not '" + spec.part_of + "'");
  }
  auto s = std::make_unique<Service>();
  s->spec = spec;
  s->status.name = spec.name;
  s->status.argv = spec.argv;
  s->status.part_of = spec.part_of;
  Service& ref = *s;
  services_[spec.name] = std::move(s);
  start(ref);
  if (ref.status.state == ServiceState::kFailed) {
    Error e = makeError("service '" + spec.name + "' could not start; see " + log_dir_ + "/" + spec.name + ".log");
    services_.erase(spec.name);
    return e;
  }
  record();
  return okStatus();
}

Result<int> Supervisor::adoptRecorded() {
  if (state_file_.empty() || !pathExists(state_file_)) return 0;
  OC_ASSIGN_OR_RETURN(std::string text, readFile(state_file_));
  std::vector<std::string> skipped;
  auto recorded = parseServicesRecord(text, &skipped);
  if (!recorded.ok()) {
    return makeError(state_file_ + ": " + recorded.error().message + "; move it away to start with no services");
  }
  for (const auto& bad : skipped) spdlog::warn("{}: skipping a malformed entry: {}", state_file_, bad);
  int adopted = 0;
  for (const auto& r : *recorded) {
    if (!validServiceName(r.spec.name) || services_.count(r.spec.name)) {
      spdlog::warn("{}: skipping service '{}' (bad or duplicate name)", state_file_, r.spec.name);
      continue;
    }
    auto s = std::make_unique<Service>();
    s->spec = r.spec;
    s->status.name = r.spec.name;
    s->status.argv = r.spec.argv;
    s->status.part_of = r.spec.part_of;
    s->status.restarts = r.restarts;
    Service& ref = *s;
    services_[ref.spec.name] = std::move(s);
    switch (r.pid > 0 && r.start_ticks != 0 ? adopt(ref, r.pid, r.start_ticks) : Adoption::kGone) {
      case Adoption::kAdopted:
        ++adopted;
        spdlog::info("service {} adopted, pid {}", ref.spec.name, r.pid);
        break;
      case Adoption::kFailed:
        // Alive but unwatchable: starting a second copy next to it would
        // clash (ports, mounts); report it, and keep it recorded so that
        // the next agent tries again.
        ref.status.state = ServiceState::kFailed;
        ref.status.pid = r.pid;
        ref.start_ticks = r.start_ticks;
        break;
      case Adoption::kGone:
        if (r.state == toString(ServiceState::kExited)) {
          ref.status.state = ServiceState::kExited;
          break;
        }
        spdlog::warn("service {} (pid {}) did not outlive the previous agent; starting it", ref.spec.name, r.pid);
        ref.status.restarts++;
        start(ref);
        break;
    }
  }
  record();
  return adopted;
}

Supervisor::Adoption Supervisor::adopt(Service& s, pid_t pid, uint64_t start_ticks) {
  // The pidfd first, the identity check second: once the pidfd is open the
  // pid cannot be reused under us, so a matching start time means this
  // pidfd is the recorded process.
  int pidfd = openPidfd(pid);
  if (pidfd < 0) {
    if (errno == ESRCH) return Adoption::kGone;
    spdlog::error("service {}: pidfd_open({}): {}", s.spec.name, pid, std::strerror(errno));
    return processStartTicks(pid) == start_ticks ? Adoption::kFailed : Adoption::kGone;
  }
  if (processStartTicks(pid) != start_ticks) {
    ::close(pidfd);
    return Adoption::kGone;
  }
  if (!watchPidfd(s, pid, pidfd)) return Adoption::kFailed;
  s.adopted = true;
  s.status.state = ServiceState::kRunning;
  s.started_at = std::chrono::steady_clock::now();
  return Adoption::kAdopted;
}

bool Supervisor::watch(Service& s, pid_t pid) {
  int pidfd = openPidfd(pid);
  if (pidfd < 0) {
    spdlog::error("service {}: pidfd_open({}): {}", s.spec.name, pid, std::strerror(errno));
    return false;
  }
  return watchPidfd(s, pid, pidfd);
}

bool Supervisor::watchPidfd(Service& s, pid_t pid, int pidfd) {
  // A pidfd turns "process exited" into an fd event on our loop, without
  // SIGCHLD handlers, without racing other children's reaping, and for
  // processes that are not our children (adopted ones).
  std::string name = s.spec.name;
  auto watched = loop_.watchFd(pidfd, EPOLLIN, [this, name](uint32_t) { onExit(name); });
  if (!watched.ok()) {
    spdlog::error("service {}: {}", name, watched.error().message);
    ::close(pidfd);
    return false;
  }
  s.pidfd = pidfd;
  s.status.pid = pid;
  s.start_ticks = processStartTicks(pid);
  return true;
}

void Supervisor::record() const {
  if (state_file_.empty()) return;
  std::vector<RecordedService> out;
  for (const auto& [name, s] : services_) {
    bool alive = s->status.pid > 0;  // watched, or alive but unwatchable
    out.push_back({s->spec, s->status.restarts, toString(s->status.state), alive ? s->status.pid : 0,
                   alive ? s->start_ticks : 0});
  }
  if (auto w = writeFileAtomic(state_file_, renderServicesRecord(out)); !w.ok()) {
    spdlog::error("record services: {}", w.error().message);
  }
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
  // Unwatched, its exit would go unnoticed: stop it rather than lose track.
  if (!watch(s, *pid)) {
    ::kill(*pid, SIGKILL);
    ::waitpid(*pid, nullptr, 0);
    s.status.pid = 0;
    s.status.state = ServiceState::kFailed;
    return;
  }
  spdlog::info("service {} started, pid {}", s.spec.name, *pid);
  record();
}

void Supervisor::onExit(const std::string& name) {
  auto it = services_.find(name);
  if (it == services_.end()) return;
  Service& s = *it->second;
  loop_.unwatchFd(s.pidfd);
  // Our child: its exit code. An adopted process: unknown (-1).
  s.status.last_exit = reapExitCode(s.pidfd);
  ::close(s.pidfd);
  s.pidfd = -1;
  s.status.pid = 0;
  spdlog::warn("service {} exited with {}", name, s.status.last_exit);
  // A one-shot that an earlier agent started ends here as well: its exit
  // code is lost with its parent, and running it again would repeat it.
  bool finished = s.status.last_exit == 0 || (s.adopted && s.status.last_exit == -1);
  s.adopted = false;
  if (!s.spec.restart && finished) {
    s.status.state = ServiceState::kExited;
  } else {
    scheduleRestart(s);
  }
  record();
}

void Supervisor::scheduleRestart(Service& s) {
  auto ran_for = std::chrono::steady_clock::now() - s.started_at;
  if (ran_for >= kStableAfter) s.backoff = kInitialBackoff;
  s.status.state = ServiceState::kBackoff;
  std::string name = s.spec.name;
  auto delay = s.handover ? std::chrono::milliseconds(0) : s.backoff;
  s.handover = false;
  s.restart_timer = loop_.addTimer(delay, [this, name] {
    auto it = services_.find(name);
    if (it == services_.end()) return;
    it->second->status.restarts++;
    start(*it->second);
  });
  s.backoff = std::min(s.backoff * 2, kMaxBackoff);
}

Status Supervisor::replace(const std::string& name, const std::vector<std::string>& argv) {
  auto it = services_.find(name);
  if (it == services_.end()) return makeError("no service '" + name + "'");
  if (argv.empty()) return makeError("service '" + name + "' would have an empty argv");
  Service& s = *it->second;
  s.spec.argv = argv;
  s.status.argv = argv;
  record();
  if (s.pidfd >= 0) {
    s.handover = true;
    if (::syscall(SYS_pidfd_send_signal, s.pidfd, SIGHUP, nullptr, 0) != 0) {
      s.handover = false;
      return errnoError("signal service " + name);
    }
    spdlog::info("service {}: new argv, asked pid {} to hand over", name, s.status.pid);
  }
  return okStatus();
}

Status Supervisor::remove(const std::string& name) {
  auto it = services_.find(name);
  if (it == services_.end()) return makeError("no service '" + name + "'");
  Service& s = *it->second;
  if (s.restart_timer) loop_.cancelTimer(s.restart_timer);
  if (s.pidfd >= 0) {
    loop_.unwatchFd(s.pidfd);
    terminate(s.spec.name, s.pidfd, std::chrono::milliseconds(2000));
    ::close(s.pidfd);
  }
  services_.erase(it);
  record();
  // Then what belongs to it (the keeper of its FUSE connections: once it is
  // gone, the kernel aborts the connections and readers get errors, not a
  // hang on a server that will never answer).
  std::vector<std::string> parts;
  for (const auto& [n, other] : services_) {
    if (other->spec.part_of == name) parts.push_back(n);
  }
  for (const auto& n : parts) {
    if (Status st = remove(n); !st.ok()) spdlog::warn("removing {} with {}: {}", n, name, st.error().message);
  }
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
    if (s->pidfd >= 0) ::syscall(SYS_pidfd_send_signal, s->pidfd, SIGTERM, nullptr, 0);
  }
  for (auto& [_, s] : services_) {
    if (s->pidfd < 0) continue;
    loop_.unwatchFd(s->pidfd);
    terminate(s->spec.name, s->pidfd, grace);
    ::close(s->pidfd);
    s->pidfd = -1;
    s->status.pid = 0;
    s->status.state = ServiceState::kExited;
  }
}

void Supervisor::releaseAll() {
  for (auto& [name, s] : services_) {
    if (s->restart_timer) loop_.cancelTimer(s->restart_timer);
    if (s->pidfd >= 0) {
      loop_.unwatchFd(s->pidfd);
      ::close(s->pidfd);
    }
    spdlog::info("service {} released, pid {}", name, s->status.pid);
  }
  // Not recorded: the file must keep the pids for the next agent.
  services_.clear();
}

}  // namespace offcore
