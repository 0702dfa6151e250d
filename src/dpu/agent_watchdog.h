// The SoC's init for the agent. On a card the SoC's init system restarts a
// crashed management daemon; the software DPU has a tiny watchdog instead
// (`offcore watchdog --name N`), started by `dpu up` inside the SoC domain.
// It holds a pidfd on the agent and, when the agent dies (a crash, kill -9,
// the OOM killer), starts a new one at once, which adopts the services, VFs
// and dataplane as `dpu agent restart` does. The first restarts are
// immediate; more in quick succession back off (up to 5 s) so a crash loop
// does not spin.
//
// Who runs the agent is recorded in <run_dir>/agent.pid ("PID STARTTICKS"),
// written by whoever started it (`dpu up`, `dpu agent restart`, the
// watchdog). SIGTERM stops the watchdog alone; the agent keeps running.
#pragma once

#include <sys/types.h>

#include <string>

#include "base/config.h"
#include "base/result.h"
#include "dpu/layout.h"

namespace offcore {

// Records pid (with its start time) as the node's agent.
Status writeAgentPid(const NodeLayout& layout, pid_t pid);
// The recorded agent pid, or 0 when none was recorded. The pid may be dead.
pid_t recordedAgentPid(const NodeLayout& layout);
// True if pid runs `offcore ROLE --name NODE` ("agent", "watchdog"): after a
// crash a recorded pid may belong to anything.
bool isNodeProcess(pid_t pid, const std::string& role, const std::string& node);

// Runs the watchdog in this process until SIGTERM/SIGINT.
Status runAgentWatchdog(const Config& config, const std::string& node);

}  // namespace offcore
