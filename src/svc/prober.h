// Prober: runs this node's NetworkProbes (TCP connect or HTTP GET) from the
// SoC and reports each backend's health transitions. One thread per probe:
// probes are few (one per backend this node hosts) and each one mostly
// sleeps; results go back to the owner as messages (the callback is handed
// to EventLoop::post by the caller).
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "svc/resources.h"

namespace offcore::svc {

struct ProbeTask {
  NetworkProbe probe;
  std::string address;  // the backend's IPv4 address
  std::string device;   // bind to this interface (a pod's representor), "" = route normally
  bool operator==(const ProbeTask&) const = default;
};

struct ProbeResult {
  std::string backend, probe;
  bool healthy = false;
  std::string error;  // why the last attempt failed
};

// One attempt, blocking up to probe.timeout_ms. "" = success.
std::string probeOnce(const ProbeTask& task);

class Prober {
 public:
  using Report = std::function<void(const ProbeResult&)>;
  explicit Prober(Report report) : report_(std::move(report)) {}
  ~Prober();

  // Starts, restarts or stops probe threads so that exactly `tasks` (by
  // backend name) run. A new probe starts from the backend's last known
  // health when there is one (a restarted agent must not bring a dead
  // backend back for a few intervals), else healthy. Owner's thread only.
  void set(const std::map<std::string, ProbeTask>& tasks, const std::map<std::string, bool>& last_known = {});

 private:
  struct Runner {
    ProbeTask task;
    std::shared_ptr<std::atomic<bool>> stop;
    std::thread thread;
  };
  void stopRunner(Runner& r);

  Report report_;
  std::map<std::string, Runner> runners_;
};

}  // namespace offcore::svc
