// Shared pieces of `offcore demo`: the run's context, the undo stack every
// part keeps (RAII, reverse order), interruption (SIGINT/SIGTERM), running
// clients as subprocesses in a node's domain, and the CPU sample each step
// takes from the node's cgroups for the closing table.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/subprocess.h"
#include "bench/fio.h"
#include "cli/common.h"
#include "dpu/node.h"

namespace offcore::demo {

// SIGINT/SIGTERM set a flag; every part checks it between actions and long
// clients are ended when it is set, so the undo stacks always run.
void installSignalHandlers();
bool interrupted();
int interruptSignal();
Status checkInterrupted();

struct Context {
  CliContext& cli;
  NodeManager& nodes;
  std::string node;  // the demo's node, up for the whole run
  std::string id;    // unique suffix for everything the run names
  std::string work;  // private scratch dir, removed at the end
  std::string self;  // the offcore binary
  std::string cni;   // the offcore-cni binary
};

// Undo actions of one step, run newest first when the guard goes out of
// scope (every exit path) or run() is called. Each action is best effort.
class Cleanup {
 public:
  explicit Cleanup(std::string step) : step_(std::move(step)) {}
  Cleanup(const Cleanup&) = delete;
  Cleanup& operator=(const Cleanup&) = delete;
  ~Cleanup() { run(); }
  void add(std::string what, std::function<void()> undo);
  void run();

 private:
  std::string step_;
  std::vector<std::pair<std::string, std::function<void()>>> undo_;
};

// In-child hook that places a process in one of the node's domains.
SpawnOptions inDomain(Context& ctx, Domain domain);

// Runs argv to completion; ends it (SIGTERM, then SIGKILL) when the demo is
// interrupted. stdout+stderr are captured (merged) into `out` if given.
Status run(const std::vector<std::string>& argv, const SpawnOptions& opts = {}, std::string* out = nullptr);
Result<std::string> output(const std::vector<std::string>& argv, const SpawnOptions& opts = {});

// A daemon in its own session, output appended to `log`.
Result<pid_t> startDaemon(const std::vector<std::string>& argv, const std::string& log, SpawnOptions opts = {});
// SIGTERM to the daemon's process group, SIGKILL after `grace_ms`; reaped.
void stopDaemon(pid_t pid, int grace_ms = 3000);

// Polls `ready` every 50 ms for up to `ms`; false on timeout or interrupt.
bool waitFor(const std::function<bool()>& ready, int ms);

// Unmounts every mount at or below `dir`, deepest first (lazily).
void unmountBelow(const std::string& dir);

// `fabric host add NAME` (its removal goes on `undo`); returns its address
// without the prefix length.
Result<std::string> addFabricHost(Context& ctx, Cleanup& undo, const std::string& name);

struct CpuSample {
  double host = 0, infra = 0, soc = 0;  // cumulative cpu-seconds per cgroup
};
CpuSample sampleCpu(Context& ctx);
CpuSample sampleCpu(Context& ctx, const std::string& node);

// A pod (a network namespace) wired by offcore-cni; its removal (CNI DEL,
// netns delete) goes on `undo`. Returns its address.
struct CniPod {
  std::string name, node, subnet;
  bool mesh = false;
  std::string service_account = "default";
  std::string vpc = "default";  // the subnet's
};
Result<std::string> addCniPod(Context& ctx, Cleanup& undo, const CniPod& pod);

// A fabric host running `offcore target serve` on :4420 (data under dir);
// its removal goes on `undo`.
struct StorageHost {
  std::string ip;
  pid_t gateway_pid = 0;
};
Result<StorageHost> startStorageHost(Context& ctx, Cleanup& undo, const std::string& host, const std::string& dir);

// A verified write: fio with `job` (name, file, pattern, size, rate...) plus
// libaio, O_DIRECT and crc32c verify, in the host domain, its JSON and log
// at BASE.json/.log; `fault` runs 1 s in; fails unless fio ends with 0
// errors within 2 minutes (`what` names the fault in the error).
struct FaultedWrite {
  FioResult write, read;
  double fault_at_s = 0, took_s = 0;
};
Result<FaultedWrite> verifiedWriteThrough(Context& ctx, Cleanup& undo, const std::vector<std::string>& job,
                                          const std::string& base, const std::function<Status()>& fault,
                                          const std::string& what);

using Clock = std::chrono::steady_clock;
double secondsSince(Clock::time_point t0);

// "12,300"
std::string groupThousands(double v);
void heading(const std::string& text);

// A python HTTP server for a pod: answers every GET on :8080 with argv[1]
// (the pod's name) and a newline (demo_svc.cc).
extern const char* const kPodHttpServer;

// The parts after the foundation, each in its own file.
Status runStorage(Context& ctx);
Status runStorageMirror(Context& ctx);
// With --cluster etcd: a mirrored volume taken over from a frozen node
// (demo_takeover.cc).
Status runVolumeTakeover(Context& ctx);
Status runCsi(Context& ctx);
Status runImages(Context& ctx);
Status runSvc(Context& ctx);
// The Service part's cross-node figures (demo_svc_xnode.cc): a second node,
// wrk through the ClusterIP and through the routed baseline.
Status runSvcCrossNode(Context& ctx, const std::string& dir, const std::string& vpc, const std::string& subnet);
Status runMesh(Context& ctx);
// With --cluster etcd: an EIP moving off a node that dies (demo_eip.cc).
Status runEipFailover(Context& ctx);
Status runVm(Context& ctx);

}  // namespace offcore::demo
