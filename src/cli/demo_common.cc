#include "cli/demo_common.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <thread>

#include "base/files.h"
#include "base/json.h"

namespace offcore::demo {

namespace {

std::atomic<int> g_signal{0};

void onSignal(int sig) { g_signal.store(sig); }

// Waits for pid, ending it when the demo is interrupted. `group`: the child
// leads its own process group (a daemon), so the whole group is signalled.
Result<int> waitInterruptible(pid_t pid, bool group) {
  int status = 0;
  Clock::time_point signalled{};
  bool termed = false, killed = false;
  for (;;) {
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) return errnoError("waitpid");
    if (interrupted() && !termed) {
      ::kill(group ? -pid : pid, SIGTERM);
      termed = true;
      signalled = Clock::now();
    } else if (termed && !killed && secondsSince(signalled) > 2.0) {
      ::kill(group ? -pid : pid, SIGKILL);
      killed = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}

}  // namespace

void installSignalHandlers() {
  struct sigaction sa {};
  sa.sa_handler = onSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
}

bool interrupted() { return g_signal.load() != 0; }
int interruptSignal() { return g_signal.load(); }

Status checkInterrupted() {
  if (!interrupted()) return okStatus();
  return makeError(std::string("interrupted by ") + (g_signal.load() == SIGTERM ? "SIGTERM" : "SIGINT") +
                   "; everything the demo made is being removed");
}

void Cleanup::add(std::string what, std::function<void()> undo) {
  undo_.emplace_back(std::move(what), std::move(undo));
}

void Cleanup::run() {
  if (undo_.empty()) return;
  auto t0 = Clock::now();
  size_t n = undo_.size();
  while (!undo_.empty()) {
    auto item = std::move(undo_.back());
    undo_.pop_back();
    item.second();
  }
  std::printf("   cleanup %s: %zu action(s) undone in %.1f s\n", step_.c_str(), n, secondsSince(t0));
}

SpawnOptions inDomain(Context& ctx, Domain domain) {
  SpawnOptions o;
  auto st = ctx.nodes.state(ctx.node);
  if (!st.ok()) {
    const Error& e = st.error();
    o.in_child = [e] { return Status(e); };
    return o;
  }
  NodeState node = *st;
  NodeManager* nodes = &ctx.nodes;
  o.in_child = [nodes, node, domain]() mutable { return nodes->enterDomain(node, domain); };
  return o;
}

Status run(const std::vector<std::string>& argv, const SpawnOptions& opts, std::string* out) {
  OC_TRY(checkInterrupted());
  char path[] = "/tmp/offcore-demo-out-XXXXXX";
  int fd = ::mkstemp(path);
  if (fd < 0) return errnoError("mkstemp");
  ::close(fd);
  SpawnOptions o = opts;
  o.output_file = path;
  auto pid = spawn(argv, o);
  if (!pid.ok()) {
    ::unlink(path);
    return pid.error();
  }
  auto rc = waitInterruptible(*pid, o.new_session);
  std::string text = readFile(path).valueOr("");
  ::unlink(path);
  if (out) *out = text;
  if (!rc.ok()) return rc.error();
  OC_TRY(checkInterrupted());
  if (*rc != 0) {
    auto lines = splitLines(trim(text));
    std::string last = lines.empty() ? "no message" : lines.back();
    return makeError("'" + joinArgv(argv) + "' failed (exit " + std::to_string(*rc) + "): " + last);
  }
  return okStatus();
}

Result<std::string> output(const std::vector<std::string>& argv, const SpawnOptions& opts) {
  std::string out;
  OC_TRY(run(argv, opts, &out));
  return out;
}

Result<pid_t> startDaemon(const std::vector<std::string>& argv, const std::string& log, SpawnOptions opts) {
  OC_TRY(checkInterrupted());
  opts.output_file = log;
  opts.new_session = true;  // a Ctrl-C at the terminal reaches us, not it: we stop it in order
  return spawn(argv, opts);
}

void stopDaemon(pid_t pid, int grace_ms) {
  if (pid <= 0) return;
  ::kill(-pid, SIGTERM);
  ::kill(pid, SIGTERM);
  int status = 0;
  for (int waited = 0;; waited += 20) {
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid || (r < 0 && errno != EINTR)) break;
    if (waited >= grace_ms) {
      ::kill(-pid, SIGKILL);
      ::kill(pid, SIGKILL);
      (void)waitExit(pid);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // Anything else left in its group (a child of `fabric exec`).
  ::kill(-pid, SIGKILL);
}

bool waitFor(const std::function<bool()>& ready, int ms) {
  for (int waited = 0; waited <= ms; waited += 50) {
    if (interrupted()) return false;
    if (ready()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

void unmountBelow(const std::string& dir) {
  auto info = readFile("/proc/self/mountinfo");
  if (!info.ok()) return;
  std::vector<std::string> mounts;
  for (const auto& line : splitLines(*info)) {
    // Field 5 is the mount point.
    size_t pos = 0;
    for (int i = 0; i < 4 && pos != std::string::npos; ++i) pos = line.find(' ', pos + 1);
    if (pos == std::string::npos) continue;
    size_t end = line.find(' ', pos + 1);
    std::string mp = line.substr(pos + 1, end - pos - 1);
    if (mp == dir || mp.rfind(dir + "/", 0) == 0) mounts.push_back(mp);
  }
  std::sort(mounts.rbegin(), mounts.rend());
  for (const auto& m : mounts) (void)runCapture({"umount", "-l", m});
}

Result<std::string> addFabricHost(Context& ctx, Cleanup& undo, const std::string& name) {
  OC_ASSIGN_OR_RETURN(std::string text, output({ctx.self, "fabric", "host", "add", name, "--json"}));
  std::string self = ctx.self;
  undo.add("fabric host " + name, [self, name] { (void)runCapture({self, "fabric", "host", "del", name}); });
  auto j = nlohmann::json::parse(text, nullptr, false);
  std::string ip = j.is_object() ? j.value("ip", "") : "";
  if (ip.empty()) return makeError("`fabric host add " + name + "` printed no address: " + trim(text));
  ip = ip.substr(0, ip.find('/'));
  // Fabric addresses are reused: a host removed by an earlier step may have
  // had this one, and the SoC would keep sending to its MAC until its
  // neighbour entry expires (a lost SYN then costs minutes of retries).
  NodeLayout l = ctx.nodes.layout(ctx.node);
  (void)runCapture({"ip", "-n", l.soc_netns, "neigh", "flush", "to", ip});
  return ip;
}

Result<std::string> addCniPod(Context& ctx, Cleanup& undo, const CniPod& pod) {
  auto call = [cni = ctx.cni, pod](const std::string& cmd) {
    SpawnOptions o;
    o.stdin_data = R"({"cniVersion":"1.0.0","name":"demo","type":"offcore-cni","mesh":)" +
                   std::string(pod.mesh ? "true" : "false") + R"(,"node":")" + pod.node + R"(","vpc":")" + pod.vpc +
                   R"(","subnet":")" + pod.subnet + R"("})";
    return runCapture({"env", "CNI_COMMAND=" + cmd, "CNI_CONTAINERID=" + pod.name,
                       "CNI_NETNS=/var/run/netns/" + pod.name, "CNI_IFNAME=eth0", "CNI_PATH=/opt/cni/bin",
                       "CNI_ARGS=K8S_POD_NAME=" + pod.name + ";OFFCORE_SERVICE_ACCOUNT=" + pod.service_account, cni},
                      o);
  };
  OC_TRY(run({"ip", "netns", "add", pod.name}));
  undo.add("pod " + pod.name, [name = pod.name] { (void)runCapture({"ip", "netns", "delete", name}); });
  undo.add("CNI DEL " + pod.name, [call] { (void)call("DEL"); });
  auto r = call("ADD");
  if (!r.ok()) return r.error();
  auto j = nlohmann::json::parse(r->out, nullptr, false);
  if (r->exit_code != 0 || !j.is_object() || !j.contains("ips") || !j["ips"].is_array() || j["ips"].empty()) {
    return makeError("CNI ADD for pod " + pod.name + " failed: " + trim(r->out + " " + r->err));
  }
  std::string ip = j["ips"][0].value("address", "");
  return ip.substr(0, ip.find('/'));
}

CpuSample sampleCpu(Context& ctx) { return sampleCpu(ctx, ctx.node); }

CpuSample sampleCpu(Context& ctx, const std::string& node) {
  CpuSample s;
  auto st = fetchNodeStatus(ctx.nodes, node);
  if (!st.ok()) return s;
  const auto& j = *st;
  s.host = j["domains"]["host"].value("cpu_seconds", 0.0);
  s.soc = j["domains"]["soc"].value("cpu_seconds", 0.0);
  s.infra = j["infra"].value("host_cpu_seconds", 0.0);
  return s;
}

double secondsSince(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string groupThousands(double v) {
  std::string digits = std::to_string(static_cast<long long>(v + 0.5));
  std::string out;
  int n = 0;
  for (auto it = digits.rbegin(); it != digits.rend(); ++it) {
    if (n > 0 && n % 3 == 0 && *it != '-') out.insert(out.begin(), ',');
    out.insert(out.begin(), *it);
    ++n;
  }
  return out;
}

void heading(const std::string& text) { std::printf("\n\033[1m== %s\033[0m\n", text.c_str()); }

}  // namespace offcore::demo
