#include "bench/storage_target.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <thread>

#include "base/files.h"
#include "base/stats.h"
#include "base/subprocess.h"
#include "bench/proc_stats.h"

namespace offcore {

namespace {

using nlohmann::json;

struct Case {
  std::string name, rw, pattern;
  uint32_t bs, qd;
  bool digests = false;
  double rate = 0;  // paced; 0 = as fast as it goes
  int queues = 1;
};

// build/tests/<name> beside build/src/offcore: offcore-nvme-perf (one
// thread on epoll, the load of a polling initiator) for the unpaced cases,
// offcore-nvme-bench (our initiator, a thread per command) for the paced one
// and the fill.
std::string benchTool(const char* name = "offcore-nvme-bench") {
  return (std::filesystem::path(selfExe()).parent_path().parent_path() / "tests" / name).string();
}

// A loopback port nothing listens on now.
Result<int> freePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errnoError("socket");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    int e = errno;
    ::close(fd);
    return errnoError("a free loopback port", e);
  }
  ::close(fd);
  return static_cast<int>(ntohs(a.sin_port));
}

class TargetAlone {
 public:
  TargetAlone(const Config& config, bool quick, int runs) : config_(config), quick_(quick), runs_(runs) {}
  ~TargetAlone() { stop(); }

  Result<TargetAloneResult> run() {
    TargetAloneResult out;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(0, sizeof set, &set) != 0) return errnoError("sched_getaffinity");
    std::vector<int> cpus;
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &set)) cpus.push_back(c);
    std::string tool = benchTool(), perf = benchTool("offcore-nvme-perf");
    if (cpus.size() < 2 || !pathExists(tool) || !pathExists(perf)) {
      out.notes.push_back("Target alone: skipped (" +
                          std::string(cpus.size() < 2
                                          ? "needs two cpus"
                                          : "tests/tools are missing; ninja offcore-nvme-bench offcore-nvme-perf") +
                          ").");
      return out;
    }
    initiator_cpu_ = std::to_string(cpus.front());
    target_cpu_ = std::to_string(cpus.back());
    OC_TRY(start({}));
    std::vector<Case> cases{{"4k randread QD1", "read", "rand", 4096, 1},
                            {"4k randread QD32", "read", "rand", 4096, 32},
                            {"4k randread 2 queues x QD32", "read", "rand", 4096, 32, false, 0, 2},
                            {"4k randwrite QD32", "write", "rand", 4096, 32},
                            {"4k randread QD32, digests", "read", "rand", 4096, 32, true},
                            {"128k seq read QD8", "read", "seq", 131072, 8},
                            {"128k seq write QD32", "write", "seq", 131072, 32},
                            {"4k randread QD32 paced", "read", "rand", 4096, 32, false, 20000}};
    OC_TRY(measureCases(cases, "", false, out));
    // The same target with busy polling (a cpu of its own, as a DPU's
    // dedicated cores): latency and peak, and what the spin costs at a
    // fixed load.
    stop();
    OC_TRY(start({"--busy-poll-us", std::to_string(kBusyPollUs)}));
    std::vector<Case> busy{{"4k randread QD1", "read", "rand", 4096, 1},
                           {"4k randread QD32", "read", "rand", 4096, 32},
                           {"4k randread QD32 paced", "read", "rand", 4096, 32, false, 20000}};
    OC_TRY(measureCases(busy, ", busy-poll " + std::to_string(kBusyPollUs) + " us", true, out));
    out.notes.push_back(
        "Target alone: `offcore target serve` on cpu " + target_cpu_ +
        " (taskset, one poll group), its store in "
        "/dev/shm; the load from cpu " +
        initiator_cpu_ +
        ": offcore-nvme-perf (tests/tools: one thread on epoll, "
        "the way a polling initiator such as SPDK's perf drives a target: the commands one receive's completions "
        "free leave in one send, writes that fit the controller's capsule (IOCCSZ) in-capsule) for the unpaced "
        "cases, our initiator "
        "(offcore-nvme-bench, a thread per command) for the paced one; loopback, " +
        std::to_string(seconds()) + " s per case, medians of " + std::to_string(runs_) +
        " run(s); target cpu is its utime + stime over the case. The busy-poll rows run the target again with "
        "`--busy-poll-us " +
        std::to_string(kBusyPollUs) +
        "`: its poll group keeps polling that long after each "
        "event before it sleeps. The store is in memory, so the target reads it through a mapping (no pread per "
        "block; `reads_mapped` in its status). No mature target runs here (no SPDK, no nvmet) to stand beside it.");
    return out;
  }

 private:
  static constexpr int kBusyPollUs = 50;

  // busy: the unpaced load polls too (offcore-nvme-perf --busy-poll, as
  // SPDK's perf always does).
  Status measureCases(const std::vector<Case>& cases, const std::string& label, bool busy, TargetAloneResult& out) {
    std::string tool = benchTool(), perf = benchTool("offcore-nvme-perf");
    for (const auto& c : cases) {
      std::vector<double> iops, avg_us, p99_us, cpu_us;
      for (int r = 0; r < runs_; ++r) {
        bool paced = c.rate > 0;
        OC_ASSIGN_OR_RETURN(json j, measure(paced ? tool : perf, c, busy && !paced));
        double n = j.value("ios", 0.0);
        iops.push_back(j.value("iops", 0.0));
        avg_us.push_back(paced ? j.value("lat_avg_ms", 0.0) * 1000 : j.value("lat_avg_us", 0.0));
        p99_us.push_back(paced ? j.value("lat_p99_ms", 0.0) * 1000 : j.value("lat_p99_us", 0.0));
        cpu_us.push_back(n > 0 ? last_cpu_s_ / n * 1e6 : 0);
      }
      std::string detail = "avg " + fmt1(median(avg_us)) + " us, p99 " + fmt1(median(p99_us)) + " us; target cpu " +
                           fmt1(median(cpu_us)) + " us per I/O";
      if (c.rate > 0) {
        out.rows.push_back(
            {"target alone" + label + ": target cpu per I/O, " + c.name + " at " + fmt0(c.rate) + " I/O/s", "µs",
             median(cpu_us), std::nullopt, true,
             "reached " + fmt0(median(iops)) + " I/O/s; avg " + fmt1(median(avg_us)) + " us"});
        continue;
      }
      if (c.name == "4k randread QD32")
        detail += "; target >= 250k: " + std::string(median(iops) >= 250000 ? "met" : "NOT met");
      if (c.name == "4k randread QD1")
        detail += "; target avg <= 30 us: " + std::string(median(avg_us) <= 30 ? "met" : "NOT met");
      out.rows.push_back(
          {"target alone" + label + ": " + c.name + " IOPS", "I/O/s", median(iops), std::nullopt, false, detail});
    }
    return okStatus();
  }

  int seconds() const { return quick_ ? 2 : 6; }
  static std::string fmt0(double v) { return std::to_string(static_cast<long long>(v + 0.5)); }
  static std::string fmt1(double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.1f", v);
    return b;
  }

  Status start(const std::vector<std::string>& extra) {
    OC_ASSIGN_OR_RETURN(int port, freePort());
    name_ = "bt" + std::to_string(::getpid() % 100000);
    dir_ = "/dev/shm/offcore-bench-target-" + std::to_string(::getpid());
    OC_TRY(makePrivateDir(dir_));
    listen_ = "127.0.0.1:" + std::to_string(port);
    SpawnOptions so;
    so.output_file = dir_ + "/target.log";
    so.new_session = true;
    std::vector<std::string> argv{"taskset",  "-c",    target_cpu_, selfExe(),      "target", "serve",
                                  "--listen", listen_, "--data",    dir_ + "/data", "--name", name_};
    argv.insert(argv.end(), extra.begin(), extra.end());
    OC_ASSIGN_OR_RETURN(pid_, spawn(argv, so));
    std::string sock = config_.run_root + "/targets/" + name_ + "/api.sock";
    for (int i = 0; i < 200 && !pathExists(sock); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(25));
    OC_TRY(runChecked({selfExe(), "volume", "create", "v", "--size", "1G", "--target", name_}));
    nqn_ = "nqn.2026-11.io.offcore:" + name_ + ":v";
    // Allocate what the cases read.
    return runChecked({"taskset", "-c", initiator_cpu_, benchTool(), "--port", listen_.substr(listen_.find(':') + 1),
                       "--nqn", nqn_, "--rw", "write", "--bs", "1048576", "--qd", "8", "--seconds", "3", "--size-mib",
                       "256"});
  }

  Result<json> measure(const std::string& tool, const Case& c, bool busy_initiator) {
    std::vector<std::string> argv{"taskset",      "-c",
                                  initiator_cpu_, tool,
                                  "--port",       listen_.substr(listen_.find(':') + 1),
                                  "--nqn",        nqn_,
                                  "--rw",         c.rw,
                                  "--pattern",    c.pattern,
                                  "--bs",         std::to_string(c.bs),
                                  "--qd",         std::to_string(c.qd),
                                  "--seconds",    std::to_string(seconds()),
                                  "--size-mib",   "256"};
    if (c.digests) argv.push_back("--digests");
    if (busy_initiator) argv.push_back("--busy-poll");
    if (c.rate > 0) argv.insert(argv.end(), {"--rate", fmt0(c.rate)});
    argv.insert(argv.end(), {"--queues", std::to_string(c.queues)});
    OC_ASSIGN_OR_RETURN(double cpu0, processCpuSeconds(pid_));
    OC_ASSIGN_OR_RETURN(ProcessOutput p, runCapture(argv));
    OC_ASSIGN_OR_RETURN(double cpu1, processCpuSeconds(pid_));
    last_cpu_s_ = cpu1 - cpu0;
    auto lines = splitLines(p.out);
    json j = lines.empty() ? json() : json::parse(lines.back(), nullptr, false);
    if (p.exit_code != 0 || !j.is_object()) {
      return makeError("offcore-nvme-bench (" + c.name + ") failed: " + trim(p.err) + " " + trim(p.out));
    }
    return j;
  }

  void stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      (void)waitExit(pid_);
      pid_ = -1;
    }
    if (!dir_.empty()) (void)removeTree(dir_);
  }

  const Config& config_;
  bool quick_;
  int runs_;
  std::string initiator_cpu_, target_cpu_, name_, dir_, listen_, nqn_;
  pid_t pid_ = -1;
  double last_cpu_s_ = 0;
};

}  // namespace

Result<TargetAloneResult> measureTargetAlone(const Config& config, bool quick, int runs) {
  TargetAlone t(config, quick, runs);
  return t.run();
}

}  // namespace offcore
