// NodeManager's side of the agent watchdog: started last by `dpu up` and
// `dpu agent restart`, stopped first by `dpu down` and `dpu agent restart`.
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <thread>

#include "base/log.h"
#include "base/subprocess.h"
#include "dpu/agent_watchdog.h"
#include "dpu/node.h"

namespace offcore {

Result<pid_t> NodeManager::spawnInSoc(const NodeState& s, const std::string& role) {
  SpawnOptions opts;
  opts.new_session = true;
  opts.output_file = layout(s.name).agent_log;
  opts.in_child = [this, &s]() { return enterDomain(s, Domain::kSoc); };
  return spawn({selfExe(), role, "--name", s.name}, opts);
}

Status NodeManager::startWatchdog(NodeState& s) {
  NodeLayout l = layout(s.name);
  OC_ASSIGN_OR_RETURN(pid_t pid, spawnInSoc(s, "watchdog"));
  s.watchdog_pid = pid;
  // It must be watching before we return: a crash right after `up` counts.
  for (int i = 0; i < 200; ++i) {
    if (isNodeProcess(pid, "watchdog", s.name)) return okStatus();
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return makeError("the agent watchdog did not start; see " + l.agent_log);
}

void NodeManager::stopWatchdog(const NodeState& s) {
  pid_t pid = s.watchdog_pid;
  if (!isNodeProcess(pid, "watchdog", s.name)) return;
  // SIGTERM ends it without touching the agent; a stopped or hung one gets
  // SIGKILL, which has the same effect.
  (void)::kill(pid, SIGTERM);
  for (int i = 0; i < 200; ++i) {
    ::waitpid(pid, nullptr, WNOHANG);  // ours after a rolled-back up
    if (processStartTicks(pid) == 0) return;
    if (i == 100) (void)::kill(pid, SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  spdlog::warn("the watchdog {} of node {} did not exit", pid, s.name);
}

}  // namespace offcore
