// Supervisor: runs the node's offloaded services as child processes of the
// agent, so they inherit the SoC domain (namespace and cgroup). A service
// that exits is restarted with exponential backoff; one that stays up for
// kStableAfter has its backoff reset.
//
// Owned by the agent's loop thread; every member runs there.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/event_loop.h"
#include "base/result.h"

namespace offcore {

struct ServiceSpec {
  std::string name;               // [a-z0-9-], unique in the node
  std::vector<std::string> argv;  // argv[0] found through PATH
  bool restart = true;            // false: a clean exit ends the service
  // "" or the service this one serves (a keeper of its connections): it is
  // removed with that service, after it, so nothing it holds outlives it.
  std::string part_of;
};

enum class ServiceState { kStarting, kRunning, kBackoff, kExited, kFailed };
const char* toString(ServiceState state);

struct ServiceStatus {
  std::string name;
  ServiceState state = ServiceState::kStarting;
  pid_t pid = 0;
  int restarts = 0;
  int last_exit = 0;
  std::vector<std::string> argv;
  std::string part_of;
};

class Supervisor {
 public:
  static constexpr std::chrono::milliseconds kInitialBackoff{200};
  static constexpr std::chrono::milliseconds kMaxBackoff{10000};
  static constexpr std::chrono::milliseconds kStableAfter{10000};

  // state_file: where the services are recorded ("" = not recorded).
  Supervisor(EventLoop& loop, std::string log_dir, std::string state_file = "");
  ~Supervisor();

  // Takes over the services recorded in the state file: a process still
  // running is adopted, one that is gone is started again (restarts + 1).
  // Returns how many were adopted; an unreadable file is an error.
  Result<int> adoptRecorded();
  Status add(const ServiceSpec& spec);
  // Gives a service a new argv and asks the running process to hand over
  // (SIGHUP: a service that keeps state for its successor, like a disk's
  // FUSE connection in its keeper, exits without tearing it down); the
  // restart that follows runs the new argv at once, with no backoff. A
  // service waiting in backoff starts with the new argv when it is due.
  Status replace(const std::string& name, const std::vector<std::string>& argv);
  // Stops the service (SIGTERM, then SIGKILL after grace) and forgets it;
  // then does the same to the services that are part of it.
  Status remove(const std::string& name);
  std::vector<ServiceStatus> list() const;
  Result<ServiceStatus> get(const std::string& name) const;
  // Sends SIGTERM to every service and waits up to grace for them to go.
  void stopAll(std::chrono::milliseconds grace);
  // Lets go of every service without stopping it, for the next agent to
  // adopt (an agent restart). The state file stays.
  void releaseAll();

 private:
  struct Service;
  enum class Adoption { kAdopted, kGone, kFailed };
  void start(Service& s);
  bool watch(Service& s, pid_t pid);
  bool watchPidfd(Service& s, pid_t pid, int pidfd);
  Adoption adopt(Service& s, pid_t pid, uint64_t start_ticks);
  void record() const;
  void onExit(const std::string& name);
  void scheduleRestart(Service& s);

  EventLoop& loop_;
  std::string log_dir_;
  std::string state_file_;
  std::map<std::string, std::unique_ptr<Service>> services_;
};

}  // namespace offcore
