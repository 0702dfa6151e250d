// `offcore bench vm`: a guest's disk through offcore's vhost-user-blk back
// end in the SoC, against qemu-storage-daemon's vhost-user-blk export in the
// host domain and QEMU's own virtio-blk. The orchestration (one node, a
// guest with fio per back end) is scripts/bench/vm.sh; this suite runs it
// and turns its JSON lines (bench/vm_results.h) into the report: medians
// over --runs of IOPS, throughput and host/SoC CPU per I/O, and a chart.
#include <cstdio>

#include "base/files.h"
#include "bench/driver.h"
#include "bench/suite.h"
#include "bench/vm_results.h"

namespace offcore {
namespace {

// The targets.
constexpr double kMinVsQsd = 1.0;          // throughput >= 1.0 x qemu-storage-daemon
constexpr double kMaxHostCpuVsQemu = 0.5;  // host-domain CPU per I/O <= 0.5 x in-QEMU virtio-blk

struct Job {
  const char* name;
  const char* label;
  bool iops;  // IOPS row (4K random) or MiB/s row (128K sequential)
};
const Job kJobs[] = {{"randread", "4K random read", true},
                     {"randwrite", "4K random write", true},
                     {"seqread", "128K sequential read", false},
                     {"seqwrite", "128K sequential write", false}};

std::string num(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string verdict(bool ok) { return ok ? "met" : "NOT met"; }

class VmSuite final : public BenchSuite {
 public:
  explicit VmSuite(Config config) : config_(std::move(config)) {}
  std::string name() const override { return "vm"; }
  std::string summary() const override {
    return "VM disk: offcore vhost-user-blk in the SoC vs qemu-storage-daemon vs QEMU's virtio-blk (fio in a guest)";
  }

  Result<BenchReport> run(const BenchOptions& options) override {
    std::vector<std::string> args{"--runs", std::to_string(options.quick ? 1 : options.runs)};
    if (options.quick) args.push_back("--quick");
    // ocbv-: the prefix every name of this bench carries (see scripts/bench/vm.sh).
    OC_ASSIGN_OR_RETURN(auto lines, runBenchDriver({"scripts/bench/vm.sh", "vm driver", "ocbv-vm", args}));
    VmResults d;
    if (d.add(lines) == 0) return makeError("the vm driver produced no measurements");
    BenchReport r = buildReport(d, options);
    plot(d, options.out_dir, r);
    return r;
  }

 private:
  static double rate(const Job& j, const VmJob& m) { return j.iops ? m.iops() : m.mibps(); }

  BenchReport buildReport(const VmResults& d, const BenchOptions& options) const {
    BenchReport r;
    r.suite = "vm";
    r.title = "VM disk: offcore vhost-user-blk in the SoC vs qemu-storage-daemon vs QEMU's virtio-blk";
    r.baseline_name = "qemu-storage-daemon (throughput rows) or QEMU's in-process virtio-blk (CPU rows)";
    r.plot = false;  // our own chart: the three back ends side by side
    int runs = options.quick ? 1 : options.runs;
    r.method =
        "One software DPU. A guest (Debian 6.1 kernel, busybox initramfs with fio, 1 vCPU, 512 MiB, QEMU 7.2 TCG) "
        "runs in the node's host domain; its disk is one 1 GiB raw file (written, not sparse) on the same ext4, "
        "served three ways: offcore = `offcore vm blk-serve --file` in the SoC domain (vhost-user-blk, one queue); "
        "qsd = qemu-storage-daemon's vhost-user-blk export in the host domain (what a host runs without a DPU; "
        "file driver with its defaults, i.e. through the page cache like offcore's file back end); qemu = "
        "QEMU's own virtio-blk (-drive if=virtio,cache=none,aio=threads). In the guest fio (direct=1, libaio, "
        "iodepth 16, time based, " +
        std::string(options.quick ? "4" : "10") +
        " s each) runs 4K random read, 4K random write, 128K sequential read and 128K sequential write on "
        "/dev/vda. IOPS and MiB/s are fio's. CPU: the node's host and SoC cgroups (cpuacct) between the guest's "
        "console markers around each job (fio prints them right before and after its job, so its setup stays out), "
        "divided by the job's I/Os. Medians over " +
        std::to_string(runs) + " run(s); the back ends rotate order between runs.";
    for (const Job& j : kJobs) {
      auto med = [&](const std::string& mode, auto f) { return d.median(mode, j.name, f); };
      auto rt = [&](const VmJob& m) { return rate(j, m); };
      std::string unit = j.iops ? "IOPS" : "MiB/s";
      auto oc = med("offcore", rt), qsd = med("qsd", rt), qemu = med("qemu", rt);
      if (oc && qsd) {
        double x = *qsd > 0 ? *oc / *qsd : 0;
        r.rows.push_back({std::string(j.label) + ", offcore vs qemu-storage-daemon", unit, *oc, *qsd, false,
                          "in-QEMU virtio-blk " + num(j.iops ? "%.0f" : "%.1f", qemu.value_or(0)) +
                              "; target >= " + num("%.1f", kMinVsQsd) + "x: " + verdict(x >= kMinVsQsd)});
      }
      auto host = [](const VmJob& m) { return m.hostUsPerIo(); };
      auto soc = [](const VmJob& m) { return m.socUsPerIo(); };
      auto oh = med("offcore", host), qh = med("qemu", host), sh = med("qsd", host);
      if (oh && qh) {
        double x = *qh > 0 ? *oh / *qh : 0;
        r.rows.push_back(
            {std::string(j.label) + ", host-domain CPU per I/O, offcore vs in-QEMU virtio-blk", "µs", *oh, *qh, true,
             "qsd " + num("%.0f", sh.value_or(0)) + " µs; SoC CPU per I/O: offcore " +
                 num("%.1f", med("offcore", soc).value_or(0)) + " µs; target <= " + num("%.1f", kMaxHostCpuVsQemu) +
                 "x: " + verdict(x <= kMaxHostCpuVsQemu)});
      }
    }
    r.notes.push_back(
        "TCG bounds most figures here: QEMU emulates the guest's CPU in software, so the vCPU (the guest's "
        "block layer, fio, the virtio driver, every interrupt) costs tens of µs per I/O of host CPU, and one vCPU "
        "thread caps the guest at a few thousand IOPS whatever the back end does. The 4K IOPS rows and all the "
        "host CPU rows are TCG-bound; the 128K rows depend more on the back end's copy and the page cache. "
        "With KVM the vCPU's share would shrink to the guest's own work and the back end's share would dominate.");
    r.notes.push_back(
        "The host-domain CPU of the offcore rows is QEMU alone (vCPU, its vhost-user notifications); the back "
        "end's work is in the SoC column. For qsd and in-QEMU virtio-blk the back end's work is in the host domain.");
    r.notes.push_back(
        "Caching differs as the issue sets it: offcore's file back end and qemu-storage-daemon (file driver "
        "defaults) go through the host's page cache, so their 128K rows and reads after a write can be served "
        "from memory; in-QEMU virtio-blk runs with cache=none (O_DIRECT), so its rows include the disk. The "
        "throughput target compares the two page-cache back ends; the CPU target compares host-domain CPU only.");
    r.notes.push_back(
        "The machine has 2 CPUs shared with other work while this ran: figures move by 10-20% between runs.");
    r.notes.push_back("Throughput rows: higher is better (ratio > 1 favours offcore); CPU rows: lower is better.");
    return r;
  }

  void plot(const VmResults& d, const std::string& dir, BenchReport& r) const {
    std::string data;
    for (const Job& j : kJobs) {
      data += std::string("\"") + j.label + "\"";
      for (const char* mode : {"offcore", "qsd", "qemu"}) {
        auto v = d.median(mode, j.name, [&](const VmJob& m) { return rate(j, m); });
        data += v ? " " + num("%.1f", *v) : " -";
      }
      for (const char* mode : {"offcore", "qsd", "qemu"}) {
        auto v = d.median(mode, j.name, [](const VmJob& m) { return m.hostUsPerIo(); });
        data += v ? " " + num("%.1f", *v) : " -";
      }
      auto s = d.median("offcore", j.name, [](const VmJob& m) { return m.socUsPerIo(); });
      data += s ? " " + num("%.1f", *s) + "\n" : " -\n";
    }
    if (!makeDirs(dir).ok()) return;
    std::string data_file = dir + "/vm.dat";
    if (!writeFileAtomic(data_file, data).ok()) return;
    std::string script =
        "set terminal pngcairo size 1100,420 font ',10'\nset output '" + dir +
        "/vm.png'\nset multiplot layout 1,2 title 'VM disk under TCG (medians)' noenhanced\n"
        "set datafile missing '-'\nset style data histograms\nset style histogram clustered gap 1\n"
        "set style fill solid 0.8 border -1\nset grid ytics\nset key top left\nset yrange [0:*]\n"
        "set xtics rotate by -15\nset ylabel 'IOPS (4K rows) or MiB/s (128K rows)'\nplot '" +
        data_file +
        "' using 2:xtic(1) title 'offcore (SoC)', '' using 3 title 'qemu-storage-daemon', '' using 4 title "
        "'in-QEMU virtio-blk'\nset ylabel 'host-domain CPU, µs per I/O'\nplot '" +
        data_file +
        "' using 5:xtic(1) title 'offcore: host', '' using 8 title 'offcore: SoC', '' using 6 title "
        "'qemu-storage-daemon: host', '' using 7 title 'in-QEMU virtio-blk: host'\nunset multiplot\n";
    plotChart(script, data_file, "VM disk throughput and CPU per I/O", "vm.png", r);
  }

  Config config_;
};

}  // namespace

std::unique_ptr<BenchSuite> makeVmSuite(const Config& config) { return std::make_unique<VmSuite>(config); }

}  // namespace offcore
