// `offcore bench storage`: fio through a disk attached over NVMe/TCP (the
// gateway on a fabric host, the initiator and FUSE file in a node's SoC, fio
// in the node's host domain) against the same fio on a local file on the
// filesystem that holds the gateway's data. Medians over --runs.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/files.h"
#include "base/progress.h"
#include "base/stats.h"
#include "base/subprocess.h"
#include "bench/fio.h"
#include "bench/proc_stats.h"
#include "bench/storage_replicas.h"
#include "bench/storage_target.h"
#include "bench/suite.h"
#include "dpu/node.h"

namespace offcore {
namespace {

using nlohmann::json;

struct FioCase {
  std::string name, rw, bs;
  int depth;
};

class StorageSuite final : public BenchSuite {
 public:
  explicit StorageSuite(Config config) : config_(std::move(config)) {}
  std::string name() const override { return "storage"; }
  std::string summary() const override {
    return "fio through an NVMe/TCP disk attached by the SoC vs a local file; 2- and 3-replica disks vs one";
  }

  Result<BenchReport> run(const BenchOptions& options) override {
    OC_TRY(checkPrerequisites());
    id_ = std::to_string(::getpid() % 100000);
    node_ = "bs" + id_;
    host_ = "bg" + id_;
    work_ = "/var/tmp/offcore-bench-storage-" + id_;
    Status s = setUp();
    Result<BenchReport> report = s.ok() ? measure(options) : Result<BenchReport>(s.error());
    tearDown();
    return report;
  }

 private:
  std::string oc() const { return selfExe(); }

  Status setUp() {
    OC_TRY(makeDirs(work_));
    OC_TRY(runChecked({oc(), "fabric", "host", "add", host_}));
    OC_ASSIGN_OR_RETURN(ProcessOutput hosts, runCapture({oc(), "fabric", "host", "list", "--json"}));
    auto list = json::parse(hosts.out, nullptr, false);
    if (!list.is_array()) return makeError("`fabric host list --json` gave no list");
    for (const auto& h : list) {
      if (h.value("name", "") == host_) ip_ = h.value("ip", "").substr(0, h.value("ip", "").find('/'));
    }
    if (ip_.empty()) return makeError("fabric host " + host_ + " has no address");
    OC_TRY(runChecked({oc(), "dpu", "up", "--name", node_, "--host-netns", "h" + node_}));
    // The gateway stands in for a remote storage server: on a real DPU it
    // costs the SoC nothing. Here it runs on the host domain's cpus, beside
    // fio, so the SoC's cpus carry only what a card would (initiator + FUSE).
    OC_ASSIGN_OR_RETURN(json status, nodeStatus());
    gateway_cpus_ = status["domains"]["host"].value("cpus", "");
    std::vector<std::string> gw_argv{oc(), "fabric", "exec", host_, "--"};
    if (!gateway_cpus_.empty()) gw_argv.insert(gw_argv.end(), {"taskset", "-c", gateway_cpus_});
    gw_argv.insert(gw_argv.end(),
                   {oc(), "target", "serve", "--listen", ip_ + ":4420", "--data", work_ + "/data", "--name", host_});
    SpawnOptions so;
    so.output_file = work_ + "/gateway.log";
    so.new_session = true;
    OC_ASSIGN_OR_RETURN(gateway_, spawn(gw_argv, so));
    std::string sock = config_.run_root + "/targets/" + host_ + "/api.sock";
    for (int i = 0; i < 200 && !pathExists(sock); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(25));
    OC_TRY(runChecked({oc(), "volume", "create", "bench", "--size", "2G", "--target", host_}));
    OC_TRY(runChecked({oc(), "disk", "attach", "nvme-tcp://" + ip_ + ":4420/nqn.2026-11.io.offcore:" + host_ + ":bench",
                       "--node", node_, "--name", "bench", "--queue-depth", "64"}));
    disk_ = config_.run_root + "/" + node_ + "/disks/bench";
    local_ = work_ + "/local.img";
    // Fill both, so reads hit allocated blocks on each side.
    for (const auto& f : {disk_, local_}) {
      OC_TRY(runChecked({"fio", "--name=fill", "--filename=" + f, "--rw=write", "--bs=1M", "--size=" + fill_size_,
                         "--direct=1", "--ioengine=libaio", "--iodepth=8", "--output-format=json"}));
    }
    return okStatus();
  }

  void tearDown() {
    (void)runCapture({oc(), "disk", "detach", "bench", "--node", node_, "--force"});
    (void)runCapture({oc(), "dpu", "down", "--name", node_});
    (void)runCapture({"ip", "netns", "delete", "h" + node_});
    if (gateway_ > 0) {
      // The fabric exec child is the gateway itself (exec in place).
      ::kill(gateway_, SIGTERM);
      (void)waitExit(gateway_);
    }
    (void)runCapture({oc(), "fabric", "host", "del", host_});
    (void)removeTree(work_);
  }

  Result<FioResult> fio(const FioCase& c, const std::string& file, bool in_host_domain, int seconds) {
    std::vector<std::string> argv{"fio",
                                  "--name=" + c.name,
                                  "--filename=" + file,
                                  "--rw=" + c.rw,
                                  "--bs=" + c.bs,
                                  "--iodepth=" + std::to_string(c.depth),
                                  "--ioengine=libaio",
                                  "--direct=1",
                                  "--time_based",
                                  "--runtime=" + std::to_string(seconds),
                                  "--size=" + fill_size_,
                                  "--randrepeat=0",
                                  "--output-format=json"};
    if (in_host_domain) argv.insert(argv.begin(), {oc(), "dpu", "exec", "--name", node_, "--domain", "host", "--"});
    OC_ASSIGN_OR_RETURN(ProcessOutput out, runCapture(argv));
    if (out.exit_code != 0) return makeError("fio failed: " + trim(out.err));
    bool read = c.rw.find("read") != std::string::npos;
    return parseFioJson(out.out, read);
  }

  Result<json> nodeStatus() {
    OC_ASSIGN_OR_RETURN(ProcessOutput out, runCapture({oc(), "dpu", "status", "--name", node_, "--json"}));
    return json::parse(out.out);
  }

  Result<BenchReport> measure(const BenchOptions& options) {
    std::vector<FioCase> cases{{"4k randread QD1", "randread", "4k", 1},   {"4k randread QD32", "randread", "4k", 32},
                               {"4k randwrite QD1", "randwrite", "4k", 1}, {"4k randwrite QD32", "randwrite", "4k", 32},
                               {"128k seq read QD8", "read", "128k", 8},   {"128k seq write QD8", "write", "128k", 8}};
    int runs = options.quick ? 1 : options.runs;
    int seconds = options.quick ? 2 : 10;
    BenchReport report;
    report.suite = "storage";
    report.title = "NVMe/TCP disk through the software DPU vs a local file";
    report.baseline_name =
        "the same fio job on a local file on the filesystem holding the gateway's data (" + work_ + ")";
    report.method = "fio " + std::to_string(seconds) + " s per case, libaio, O_DIRECT, " + fill_size_ +
                    " working set, " + std::to_string(runs) +
                    " run(s), medians. The disk path is fio (host domain) -> loop-free FUSE file -> initiator (SoC "
                    "domain) -> NVMe/TCP over the fabric veths -> gateway (fabric host) -> volume store -> file.";
    ProgressBar progress("bench storage", static_cast<int>(cases.size()) * runs * 2);
    double total_ios = 0, gw_cpu = 0, host_cpu = 0, soc_cpu = 0;
    for (const auto& c : cases) {
      std::vector<double> iops, lat50, lat99, bw, liops, llat50, llat99, lbw;
      for (int r = 0; r < runs; ++r) {
        auto st0 = nodeStatus();
        auto g0 = processCpuSeconds(gateway_);
        OC_ASSIGN_OR_RETURN(FioResult d, fio(c, disk_, true, seconds));
        auto g1 = processCpuSeconds(gateway_);
        auto st1 = nodeStatus();
        progress.step(c.name + " disk");
        if (g0.ok() && g1.ok()) gw_cpu += *g1 - *g0;
        if (st0.ok() && st1.ok()) {
          host_cpu +=
              (*st1)["domains"]["host"].value("cpu_seconds", 0.0) - (*st0)["domains"]["host"].value("cpu_seconds", 0.0);
          soc_cpu +=
              (*st1)["domains"]["soc"].value("cpu_seconds", 0.0) - (*st0)["domains"]["soc"].value("cpu_seconds", 0.0);
        }
        total_ios += d.ios;
        OC_ASSIGN_OR_RETURN(FioResult l, fio(c, local_, false, seconds));
        progress.step(c.name + " local");
        if (benchInterrupted()) return interruptedError().error();
        iops.push_back(d.iops);
        lat50.push_back(d.p50_us);
        lat99.push_back(d.p99_us);
        bw.push_back(d.bw_mib);
        liops.push_back(l.iops);
        llat50.push_back(l.p50_us);
        llat99.push_back(l.p99_us);
        lbw.push_back(l.bw_mib);
      }
      bool seq = c.bs == "128k";
      report.rows.push_back({c.name + " IOPS", "IO/s", median(iops), median(liops), false, ""});
      if (seq) report.rows.push_back({c.name + " bandwidth", "MiB/s", median(bw), median(lbw), false, ""});
      report.rows.push_back({c.name + " p50 latency", "µs", median(lat50), median(llat50), true, ""});
      report.rows.push_back({c.name + " p99 latency", "µs", median(lat99), median(llat99), true, ""});
    }
    progress.finish();
    if (benchInterrupted()) return interruptedError().error();
    OC_ASSIGN_OR_RETURN(TargetAloneResult alone,
                        measureTargetAlone(config_, options.quick, options.quick ? 1 : std::min(runs, 3)));
    double per_million = total_ios > 0 ? gw_cpu / total_ios * 1e6 : 0;
    report.rows.push_back({"gateway CPU per million I/Os", "CPU-s", per_million, std::nullopt, true,
                           "all cases, " + std::to_string(static_cast<long>(total_ios)) + " I/Os"});
    report.rows.push_back(
        {"host-domain CPU during disk runs", "CPU-s", host_cpu, std::nullopt, true, "fio itself runs here"});
    report.rows.push_back(
        {"SoC-domain CPU during disk runs", "CPU-s", soc_cpu, std::nullopt, true, "initiator + FUSE daemon"});
    report.rows.insert(report.rows.end(), alone.rows.begin(), alone.rows.end());
    if (benchInterrupted()) return interruptedError().error();
    OC_ASSIGN_OR_RETURN(ReplicaBenchResult replicated,
                        measureReplicas(config_, ReplicaBenchSetup{node_, id_, work_, gateway_cpus_}, options.quick,
                                        options.quick ? 1 : std::min(runs, 3)));
    report.rows.insert(report.rows.end(), replicated.rows.begin(), replicated.rows.end());
    report.notes.insert(report.notes.end(), replicated.notes.begin(), replicated.notes.end());
    report.notes.push_back("Ratios are offcore/local: for IOPS and bandwidth higher is better, for latency lower.");
    report.notes.push_back(
        "The gateway (a remote storage server on a real DPU) runs pinned to the host domain's cpus (" + gateway_cpus_ +
        ") beside fio, so the SoC's cpus carry only the initiator and the FUSE daemon; the disk uses the default "
        "queue count (one per SoC cpu).");
    report.notes.insert(report.notes.end(), alone.notes.begin(), alone.notes.end());
    report.notes.push_back(
        "Everything shares one 2-core machine: the SoC domain, the gateway and fio compete for "
        "the same cores, which a real DPU would not.");
    return report;
  }

  Config config_;
  std::string id_, node_, host_, work_, ip_, disk_, local_, gateway_cpus_;
  std::string fill_size_ = "512M";
  pid_t gateway_ = -1;
};

}  // namespace

std::unique_ptr<BenchSuite> makeStorageSuite(const Config& config) { return std::make_unique<StorageSuite>(config); }

}  // namespace offcore
