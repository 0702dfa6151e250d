#include "bench/storage_replicas.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/cpu_list.h"
#include "base/cpu_times.h"
#include "base/files.h"
#include "base/progress.h"
#include "base/stats.h"
#include "base/subprocess.h"
#include "bench/fio.h"
#include "bench/proc_stats.h"
#include "bench/suite.h"

namespace offcore {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

struct Gateway {
  std::string host, ip, data;
  pid_t pid = -1;
};

class ReplicaBench {
 public:
  ReplicaBench(const Config& config, const ReplicaBenchSetup& setup) : config_(config), setup_(setup) {}
  ~ReplicaBench() { tearDown(); }

  Status setUp() {
    for (int i = 0; i < 3; ++i) {
      Gateway g;
      g.host = "br" + std::to_string(i) + setup_.id;
      g.data = setup_.work + "/replica" + std::to_string(i);
      OC_TRY(runChecked({oc(), "fabric", "host", "add", g.host}));
      gateways_.push_back(g);
      OC_ASSIGN_OR_RETURN(ProcessOutput hosts, runCapture({oc(), "fabric", "host", "list", "--json"}));
      auto list = json::parse(hosts.out, nullptr, false);
      if (!list.is_array()) return makeError("`fabric host list --json` gave no list");
      for (const auto& h : list) {
        if (h.value("name", "") == g.host)
          gateways_.back().ip = h.value("ip", "").substr(0, h.value("ip", "").find('/'));
      }
      OC_TRY(startGateway(gateways_.back()));
      OC_TRY(runChecked({oc(), "volume", "create", "rep", "--size", "1G", "--target", g.host}));
    }
    // Every replica holds the working set, so reads hit allocated blocks.
    OC_TRY(attach("rfill", 3));
    Status fill =
        runChecked({"fio", "--name=fill", "--filename=" + diskFile("rfill"), "--rw=write", "--bs=1M", "--size=" + size_,
                    "--direct=1", "--ioengine=libaio", "--iodepth=8", "--output-format=json"});
    detach("rfill");
    return fill;
  }

  Result<ReplicaBenchResult> measure(bool quick, int runs) {
    const int seconds = quick ? 2 : 8;
    ReplicaBenchResult out;
    std::map<int, std::vector<double>> wr, rd, soc_per_io, gw_per_write, cpu_per_write, busy_share;
    ProgressBar progress("bench storage replicas", runs * 3 + 2);
    for (int r = 0; r < runs; ++r) {
      std::vector<int> order{1, 2, 3};
      if (r % 2) order = {3, 2, 1};  // drift falls on both sides
      for (int n : order) {
        std::string name = "r" + std::to_string(n);
        OC_TRY(attach(name, n));
        double s0 = socCpu(), g0 = gatewayCpu(), m0 = machineBusy();
        auto t0 = Clock::now();
        auto w = fio(name, "randwrite", 32, seconds);
        double g1 = gatewayCpu(), m1 = machineBusy();
        double wall = std::chrono::duration<double>(Clock::now() - t0).count();
        auto rr = w.ok() ? fio(name, "randread", 32, seconds) : Result<FioResult>(w.error());
        double s1 = socCpu();
        detach(name);
        if (!w.ok()) return w.error();
        if (!rr.ok()) return rr.error();
        wr[n].push_back(w->iops);
        rd[n].push_back(rr->iops);
        double ios = w->ios + rr->ios;
        soc_per_io[n].push_back(ios > 0 ? (s1 - s0) / ios * 1e6 : 0);
        gw_per_write[n].push_back(w->ios > 0 ? (g1 - g0) / w->ios * 1e6 : 0);
        // What the cpus that fio and every gateway share did for the writes
        // (the replicas' storage servers all land there).
        cpu_per_write[n].push_back(w->ios > 0 ? (m1 - m0) / w->ios * 1e6 : 0);
        busy_share[n].push_back(wall > 0 ? (m1 - m0) / (wall * ncpus()) : 0);
        progress.step(std::to_string(n) + " replica(s)");
        if (benchInterrupted()) return interruptedError().error();
      }
    }
    for (int n : {2, 3}) {
      std::string label = std::to_string(n) + "-replica";
      char detail[320];
      std::snprintf(detail, sizeof detail, "vs 1 replica; target >= 0.8x%s",
                    median(wr[n]) >= 0.8 * median(wr[1]) ? " (met)" : " (NOT met)");
      out.rows.push_back({label + " 4k randwrite QD32 IOPS", "IO/s", median(wr[n]), median(wr[1]), false, detail});
      std::snprintf(detail, sizeof detail, "vs 1 replica; target >= 1.0x%s",
                    median(rd[n]) >= median(rd[1]) ? " (met)" : " (NOT met)");
      out.rows.push_back({label + " 4k randread QD32 IOPS", "IO/s", median(rd[n]), median(rd[1]), false, detail});
      out.rows.push_back({label + " SoC CPU per I/O", "µs", median(soc_per_io[n]), median(soc_per_io[1]), true,
                          "SoC cgroup CPU over the write and read runs / their I/Os"});
      out.rows.push_back({label + " gateway CPU per write", "µs", median(gw_per_write[n]), median(gw_per_write[1]),
                          true,
                          "every gateway's CPU over the randwrite run / its writes: each replica's storage server does "
                          "the write, and here all of them share the host domain's cpu with fio"});
      // The ceiling: with the shared cpus busy, IOPS is the inverse of
      // their CPU per write, so a mirror can reach at most 1 / this ratio.
      double ratio = median(cpu_per_write[1]) > 0 ? median(cpu_per_write[n]) / median(cpu_per_write[1]) : 0;
      std::snprintf(detail, sizeof detail,
                    "busy time of the cpus fio and every gateway share (the host domain's) over the randwrite run / "
                    "its writes (busy %.0f%% vs %.0f%% of them): while they are saturated the mirror is capped at "
                    "1/%.2f = %.2fx of one replica",
                    100 * median(busy_share[n]), 100 * median(busy_share[1]), ratio, ratio > 0 ? 1 / ratio : 0);
      out.rows.push_back(
          {label + " host-cpu CPU per write", "µs", median(cpu_per_write[n]), median(cpu_per_write[1]), true, detail});
    }

    // One replica lost: I/O goes on degraded; then it comes back and is
    // rebuilt while fio reads from the disk.
    OC_TRY(attach("rdeg", 2));
    ::kill(gateways_[1].pid, SIGKILL);
    (void)waitExit(gateways_[1].pid);
    gateways_[1].pid = -1;
    auto dw = fio("rdeg", "randwrite", 32, seconds);
    auto dr = dw.ok() ? fio("rdeg", "randread", 32, seconds) : Result<FioResult>(dw.error());
    if (!dw.ok() || !dr.ok()) {
      detach("rdeg");
      return dw.ok() ? dr.error() : dw.error();
    }
    progress.step("degraded");
    auto rec = record("rdeg");
    uint64_t missed = rec.ok() ? (*rec)["nexus"]["replicas"][1].value("missed_bytes", 0ULL) : 0;
    out.rows.push_back({"2-replica, one lost: 4k randwrite QD32 IOPS", "IO/s", dw->iops, median(wr[2]), false,
                        "degraded vs both replicas online"});
    out.rows.push_back({"2-replica, one lost: 4k randread QD32 IOPS", "IO/s", dr->iops, median(rd[2]), false,
                        "degraded vs both replicas online"});
    // Readers during the rebuild, as long as it takes (bounded at 120 s).
    SpawnOptions so;
    so.output_file = setup_.work + "/fio-rebuild.json";
    so.new_session = true;
    OC_TRY(startGateway(gateways_[1]));
    std::vector<std::string> argv = fioArgv("rdeg", "randread", 8, 120);
    argv.push_back("--output=" + setup_.work + "/fio-rebuild.json");
    OC_ASSIGN_OR_RETURN(pid_t reader, spawn(argv, so));
    auto t0 = Clock::now();
    bool online = false;
    while (!online && !benchInterrupted() && Clock::now() - t0 < std::chrono::seconds(120)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      auto r = record("rdeg");
      online = r.ok() && (*r)["nexus"].value("state", "") == "online";
    }
    ::kill(reader, SIGINT);  // fio writes its report on SIGINT
    (void)waitExit(reader);
    std::string log = readFile(config_.run_root + "/" + setup_.node + "/disk-rdeg.log").valueOr("");
    detach("rdeg");
    progress.finish();
    if (benchInterrupted()) return interruptedError().error();
    if (!online) return makeError("the lost replica was not rebuilt within 120 s; see the disk's log");
    // The nexus logs "rebuilt: N MiB in T s" when the replica is back.
    double mib = 0, secs = 0;
    size_t at = log.rfind("rebuilt: ");
    if (at == std::string::npos || std::sscanf(log.c_str() + at, "rebuilt: %lf MiB in %lf s", &mib, &secs) != 2) {
      return makeError("the disk's log has no rebuild line");
    }
    double rate = secs > 0 ? mib / secs : 0;
    char detail[200];
    std::snprintf(detail, sizeof detail,
                  "%.0f MiB (what the replica missed: %llu MiB) in %.2f s, fio randread QD8 running; bound 256 MiB/s; "
                  "target >= 200%s",
                  mib, static_cast<unsigned long long>(missed >> 20), secs, rate >= 200 ? " (met)" : " (NOT met)");
    out.rows.push_back({"rebuild throughput while serving reads", "MiB/s", rate, std::nullopt, false, detail});
    auto during = parseFioJson(readFile(setup_.work + "/fio-rebuild.json").valueOr(""), true);
    if (during.ok()) {
      out.rows.push_back({"2-replica 4k randread QD8 IOPS during the rebuild", "IO/s", during->iops, std::nullopt,
                          false, "the whole rebuild, probe wait included"});
    }
    out.notes.push_back(
        "Replicated rows: the disk mirrored by the SoC's nexus over 2 or 3 gateways (one fabric host each, all "
        "pinned to the host domain's cpus like the single gateway) against the same volume on one gateway, "
        "attached alone; the layouts alternate order per run, " +
        std::to_string(seconds) +
        " s per fio case, "
        "medians over " +
        std::to_string(runs) + " run(s). Degraded: one gateway killed with SIGKILL.");
    return out;
  }

 private:
  std::string oc() const { return selfExe(); }
  std::string diskFile(const std::string& name) const {
    return config_.run_root + "/" + setup_.node + "/disks/" + name;
  }
  std::string uri(const Gateway& g) const {
    return "nvme-tcp://" + g.ip + ":4420/nqn.2026-11.io.offcore:" + g.host + ":rep";
  }

  Status startGateway(Gateway& g) {
    std::vector<std::string> argv{oc(), "fabric", "exec", g.host, "--"};
    if (!setup_.gateway_cpus.empty()) argv.insert(argv.end(), {"taskset", "-c", setup_.gateway_cpus});
    argv.insert(argv.end(), {oc(), "target", "serve", "--listen", g.ip + ":4420", "--data", g.data, "--name", g.host});
    SpawnOptions so;
    so.output_file = g.data + ".log";
    so.new_session = true;
    OC_ASSIGN_OR_RETURN(g.pid, spawn(argv, so));
    std::string sock = config_.run_root + "/targets/" + g.host + "/api.sock";
    for (int i = 0; i < 200; ++i) {
      auto r = runCapture({"curl", "-sf", "--unix-socket", sock, "http://x/v1/target"});
      if (r.ok() && r->exit_code == 0) return okStatus();
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    return makeError("gateway " + g.host + " did not start; see " + g.data + ".log");
  }

  Status attach(const std::string& name, int replicas) {
    std::vector<std::string> argv{oc(), "disk",          "attach", uri(gateways_[0]), "--node", setup_.node, "--name",
                                  name, "--queue-depth", "64",     "--fast-io-fail",  "1"};
    for (int i = 1; i < replicas; ++i) argv.insert(argv.end(), {"--replica", uri(gateways_[static_cast<size_t>(i)])});
    if (replicas > 1) {
      std::string id = name + "-" + setup_.id;
      argv.insert(argv.end(), {"--nexus-id", id});
      journals_.push_back(config_.cluster_dir + "/nexus/" + id + ".json");
    }
    return runChecked(argv);
  }
  void detach(const std::string& name) {
    (void)runCapture({oc(), "disk", "detach", name, "--node", setup_.node, "--force"});
  }

  Result<json> record(const std::string& name) {
    OC_ASSIGN_OR_RETURN(std::string text, readFile(diskFile(name) + ".json"));
    auto j = json::parse(text, nullptr, false);
    if (!j.is_object() || !j.contains("nexus")) return makeError("disk " + name + " has no nexus record");
    return j;
  }

  std::vector<std::string> fioArgv(const std::string& disk, const std::string& rw, int depth, int seconds) {
    return {oc(),
            "dpu",
            "exec",
            "--name",
            setup_.node,
            "--domain",
            "host",
            "--",
            "fio",
            "--name=" + rw,
            "--filename=" + diskFile(disk),
            "--rw=" + rw,
            "--bs=4k",
            "--iodepth=" + std::to_string(depth),
            "--ioengine=libaio",
            "--direct=1",
            "--time_based",
            "--runtime=" + std::to_string(seconds),
            "--size=" + size_,
            "--randrepeat=0",
            "--output-format=json"};
  }

  Result<FioResult> fio(const std::string& disk, const std::string& rw, int depth, int seconds) {
    OC_ASSIGN_OR_RETURN(ProcessOutput out, runCapture(fioArgv(disk, rw, depth, seconds)));
    if (out.exit_code != 0) return makeError("fio " + rw + " on " + disk + " failed: " + trim(out.err));
    return parseFioJson(out.out, rw.find("read") != std::string::npos);
  }

  // CPU seconds of every gateway process so far (a killed one counts 0).
  // The cpus every gateway and fio share (the host domain's; the whole
  // machine when the suite did not pin them).
  CpuSet sharedCpus() const {
    auto set = parseCpuList(setup_.gateway_cpus);
    if (set.ok() && !set->empty()) return *set;
    CpuSet all;
    if (auto t = readCpuTimes(); t.ok()) {
      for (const auto& [cpu, _] : *t) all.insert(cpu);
    }
    return all;
  }
  double machineBusy() const {
    auto t = readCpuTimes();
    return t.ok() ? sumCpuTimes(*t, sharedCpus()).busy() : 0;
  }
  int ncpus() const { return std::max<int>(1, static_cast<int>(sharedCpus().size())); }

  double gatewayCpu() {
    double sum = 0;
    for (const auto& g : gateways_) {
      if (g.pid > 0) sum += processCpuSeconds(g.pid).valueOr(0);
    }
    return sum;
  }

  double socCpu() {
    auto out = runCapture({oc(), "dpu", "status", "--name", setup_.node, "--json"});
    if (!out.ok()) return 0;
    auto j = json::parse(out->out, nullptr, false);
    if (!j.is_object() || !j.contains("domains")) return 0;
    return j["domains"]["soc"].value("cpu_seconds", 0.0);
  }

  void tearDown() {
    for (const char* d : {"rfill", "r1", "r2", "r3", "rdeg"}) {
      if (pathExists(diskFile(d) + ".json")) detach(d);
    }
    for (auto& g : gateways_) {
      if (g.pid > 0) {
        ::kill(g.pid, SIGTERM);
        (void)waitExit(g.pid);
      }
      (void)runCapture({oc(), "fabric", "host", "del", g.host});
    }
    for (const auto& j : journals_) std::remove(j.c_str());
  }

  const Config& config_;
  ReplicaBenchSetup setup_;
  std::vector<Gateway> gateways_;
  std::vector<std::string> journals_;
  std::string size_ = "256M";
};

}  // namespace

Result<ReplicaBenchResult> measureReplicas(const Config& config, const ReplicaBenchSetup& setup, bool quick, int runs) {
  ReplicaBench bench(config, setup);
  OC_TRY(bench.setUp());
  return bench.measure(quick, runs);
}

}  // namespace offcore
