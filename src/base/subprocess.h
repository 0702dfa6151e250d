// Running other programs (iproute2, nft, the workloads `dpu exec` places).
// argv is always passed as a vector: nothing here goes through a shell.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/result.h"

namespace offcore {

struct ProcessOutput {
  int exit_code = 0;  // 128+signal when killed by a signal
  std::string out;
  std::string err;
};

struct SpawnOptions {
  // Runs in the child between fork and exec, e.g. to enter a namespace or a
  // cgroup. Returning an error makes the child exit 127 with that message.
  std::function<Status()> in_child;
  std::string stdin_data;    // runCapture only
  std::string output_file;   // spawn only: stdout+stderr appended here
  bool new_session = false;  // spawn only: setsid(), detach from the tty
};

// Runs argv to completion and captures its stdout/stderr.
Result<ProcessOutput> runCapture(const std::vector<std::string>& argv, const SpawnOptions& options = {});

// Runs argv and turns a non-zero exit into an error carrying its stderr.
Status runChecked(const std::vector<std::string>& argv, const SpawnOptions& options = {});

// Starts argv without waiting. The caller reaps it.
Result<pid_t> spawn(const std::vector<std::string>& argv, const SpawnOptions& options = {});

// Waits for pid; returns the exit code (128+signal when signalled).
Result<int> waitExit(pid_t pid);

// Execs argv in this process after running in_child. Returns only on failure.
Error execInPlace(const std::vector<std::string>& argv, const SpawnOptions& options = {});

// "ip -n foo link add ..." as one line, for messages.
std::string joinArgv(const std::vector<std::string>& argv);

// The executable of this process, for re-executing ourselves (the agent).
std::string selfExe();

// The fields of /proc/PID/stat after the command name (which may hold
// spaces): [0] is field 3 (state), [19] field 22 (starttime).
Result<std::vector<std::string>> procStatFields(pid_t pid);

// The process's start time in clock ticks since boot, 0 if it is gone or a
// zombie. With the pid it names one process for the machine's uptime, which
// a pid alone does not.
uint64_t processStartTicks(pid_t pid);

}  // namespace offcore
