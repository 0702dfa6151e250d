#include "dpu/agent_watchdog.h"

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <sstream>

#include "base/files.h"
#include "base/log.h"
#include "base/subprocess.h"

namespace offcore {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::string pidFile(const NodeLayout& l) { return l.run_dir + "/agent.pid"; }

// The recorded agent if it still runs (same start time, still our agent).
pid_t liveAgent(const NodeLayout& l) {
  auto text = readFile(pidFile(l));
  if (!text.ok()) return 0;
  std::istringstream in(*text);
  pid_t pid = 0;
  uint64_t ticks = 0;
  if (!(in >> pid >> ticks) || pid <= 0) return 0;
  if (processStartTicks(pid) != ticks || !isNodeProcess(pid, "agent", l.name)) return 0;
  return pid;
}

// Waits for the agent to exit. Returns false when asked to stop instead.
bool waitForExit(pid_t pid, int sigfd) {
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) return true;  // already gone
  pollfd fds[2] = {{pidfd, POLLIN, 0}, {sigfd, POLLIN, 0}};
  int n = 0;
  do {
    n = ::poll(fds, 2, -1);
  } while (n < 0 && errno == EINTR);
  ::close(pidfd);
  return !(fds[1].revents & POLLIN);
}

// Sleeps for d unless asked to stop (then returns false).
bool pause(milliseconds d, int sigfd) {
  if (d.count() <= 0) return true;
  pollfd fd{sigfd, POLLIN, 0};
  return ::poll(&fd, 1, static_cast<int>(d.count())) == 0;
}

void reapChildren() {
  while (::waitpid(-1, nullptr, WNOHANG) > 0) {}
}

}  // namespace

Status writeAgentPid(const NodeLayout& layout, pid_t pid) {
  return writeFileAtomic(pidFile(layout), std::to_string(pid) + " " + std::to_string(processStartTicks(pid)) + "\n");
}

pid_t recordedAgentPid(const NodeLayout& layout) {
  auto text = readFile(pidFile(layout));
  if (!text.ok()) return 0;
  std::istringstream in(*text);
  pid_t pid = 0;
  return (in >> pid) && pid > 0 ? pid : 0;
}

bool isNodeProcess(pid_t pid, const std::string& role, const std::string& node) {
  if (pid <= 0) return false;
  auto cmdline = readFile("/proc/" + std::to_string(pid) + "/cmdline").valueOr("");
  std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
  return cmdline.find(" " + role + " --name " + node + " ") != std::string::npos;
}

Status runAgentWatchdog(const Config& config, const std::string& node) {
  NodeLayout l = NodeLayout::forNode(config, node);
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGHUP);
  if (::sigprocmask(SIG_BLOCK, &stop, nullptr) != 0) return errnoError("block signals");
  int sigfd = ::signalfd(-1, &stop, SFD_CLOEXEC);
  if (sigfd < 0) return errnoError("signalfd");
  spdlog::info("watchdog {}: watching the agent of node {}", ::getpid(), node);

  int quick_restarts = 0;  // restarts of agents that ran less than 10 s
  Clock::time_point last_start = Clock::now() - std::chrono::hours(1);
  pid_t current = liveAgent(l);
  for (;;) {
    if (current > 0) {
      if (!waitForExit(current, sigfd)) break;
      reapChildren();
      spdlog::warn("watchdog: the agent {} of node {} died; starting a new one", current, node);
      current = 0;
    }
    // The first restarts are immediate; a crash loop then waits longer each
    // time (200 ms doubling to 5 s). An agent that ran 10 s was healthy.
    quick_restarts = Clock::now() - last_start > std::chrono::seconds(10) ? 0 : quick_restarts + 1;
    milliseconds backoff{0};
    if (quick_restarts >= 3)
      backoff = std::min(milliseconds(200LL << std::min(quick_restarts - 3, 5)), milliseconds(5000));
    if (!pause(backoff, sigfd)) break;
    SpawnOptions opts;
    opts.new_session = true;
    opts.output_file = l.agent_log;
    last_start = Clock::now();
    auto pid = spawn({selfExe(), "agent", "--name", node}, opts);
    if (!pid.ok()) {
      spdlog::warn("watchdog: start the agent of node {}: {}", node, pid.error().message);
      continue;
    }
    current = *pid;
    if (auto s = writeAgentPid(l, current); !s.ok()) spdlog::warn("watchdog: {}", s.error().message);
    spdlog::info("watchdog: agent {} of node {} started", *pid, node);
  }
  spdlog::info("watchdog {}: stopping; the agent keeps running", ::getpid());
  ::close(sigfd);
  return okStatus();
}

}  // namespace offcore
