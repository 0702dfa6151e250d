// `offcore bench control-plane`: how fast a Service change reaches every
// node, what one costs a node and etcd, and what the store costs an apply,
// with the cluster state on etcd vs in the directory.
//
// The cluster is preloaded at the scale (10k Services selecting
// 50k pod backends with an endpoint each, on the nodes of the row);
// simulated nodes (control_plane_sims.h) follow it: up to 10 whole agent
// control planes (store watch and cache, state, ServiceProgrammer into a
// dataplane that only counts), the rest lease holders that watch and decode
// every event. Baseline: the directory store, every node an agent that
// parses state.json on each inotify event and programs it, as agents on one
// machine do.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "base/event_loop.h"
#include "base/files.h"
#include "base/progress.h"
#include "base/stats.h"
#include "base/subprocess.h"
#include "bench/control_plane_sims.h"
#include "bench/etcd_transports.h"
#include "bench/proc_stats.h"
#include "bench/suite.h"
#include "kv/etcd_client.h"
#include "svc/cluster_store.h"

namespace offcore {
namespace {

using Clock = std::chrono::steady_clock;
double msSince(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

std::string serviceDoc(const std::string& name, int i) {
  return "apiVersion: offcore.io/v1\nkind: Service\nmetadata: {name: " + name +
         "}\nspec: {ports: [{port: 80}], "
         "selector: {app: a" +
         std::to_string(i) + "}}\n";
}

Status applied(svc::ClusterStore& store, const std::vector<svc::Resource>& docs) {
  auto r = store.apply(docs);
  if (!r.ok()) return r.error();
  return okStatus();
}

Result<std::vector<svc::Resource>> services(int from, int count, const std::string& prefix) {
  std::string yaml;
  for (int i = from; i < from + count; ++i)
    yaml += (yaml.empty() ? "" : "---\n") + serviceDoc(prefix + std::to_string(i), i);
  return svc::parseResources(yaml, "bench.yaml");
}

// One etcd member on loopback, data in dir; killed (by pid) with the object.
struct Member {
  pid_t pid = 0;
  std::string url;
  ~Member() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      (void)waitExit(pid);
    }
  }
  Status start(const std::string& dir, int port) {
    std::string c = "http://127.0.0.1:" + std::to_string(port), p = "http://127.0.0.1:" + std::to_string(port + 1);
    SpawnOptions so;
    so.output_file = dir + "/etcd.log";
    so.in_child = [] {  // an interrupted or crashed benchmark takes its etcd with it
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      return okStatus();
    };
    OC_ASSIGN_OR_RETURN(
        pid, spawn({"etcd", "--name", "b", "--data-dir", dir + "/etcd", "--listen-client-urls", c,
                    "--advertise-client-urls", c, "--listen-peer-urls", p, "--initial-advertise-peer-urls", p,
                    "--initial-cluster", "b=" + p, "--max-txn-ops", "100000", "--max-request-bytes", "67108864"},
                   so));
    url = "etcd://127.0.0.1:" + std::to_string(port);
    kv::EtcdOptions o;
    o.endpoints = {c};
    auto probe = kv::makeEtcdClient(o);
    for (int i = 0; i < 100; ++i) {
      if (probe->range("probe", "").ok()) return okStatus();
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return makeError("etcd did not start; see " + dir + "/etcd.log (is etcd-server installed? scripts/setup.sh)");
  }
};

class ControlPlaneSuite final : public BenchSuite {
 public:
  explicit ControlPlaneSuite(Config config) : config_(std::move(config)) {}
  std::string name() const override { return "control-plane"; }
  std::string summary() const override {
    return "a Service change reaching every simulated node, and applying Services: etcd vs the directory store";
  }

  Result<BenchReport> run(const BenchOptions& options) override {
    const bool quick = options.quick;
    const std::vector<int> sizes = quick ? std::vector<int>{10} : std::vector<int>{10, 100, 1000};
    // A simulated node holds a few sockets (its watch, its client's pool) and
    // etcd one per node: raise the soft limit, never past 16384.
    rlimit nofile{};
    if (::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < 16384) {
      nofile.rlim_cur = std::min<rlim_t>(nofile.rlim_max, 16384);
      (void)::setrlimit(RLIMIT_NOFILE, &nofile);
    }
    const int service_count = quick ? 1000 : 10000, per_service = 5;
    const int changes = quick ? 5 : 20, dir_changes = quick ? 3 : 5, max_agents = 10;
    const int apply_n = quick ? 1000 : 10000;
    char tmpl[] = "/tmp/oc-bench-cp-XXXXXX";
    if (!::mkdtemp(tmpl)) return errnoError("mkdtemp");
    const std::string root = tmpl;
    struct RemoveRoot {
      std::string dir;
      ~RemoveRoot() { (void)removeTree(dir); }
    } remove_root{root};

    BenchReport report;
    report.suite = "control-plane";
    report.title = "Control plane: cluster state on etcd vs in a directory";
    report.baseline_name =
        "the directory store (state.json under a flock, inotify; every node parses and programs the whole state per "
        "change), every node on one machine";
    report.method =
        "One etcd member (Debian's etcd-server) on loopback. Preloaded: " + std::to_string(service_count) +
        " Services, each selecting " + std::to_string(per_service) + " pod Backends with an endpoint each (" +
        std::to_string(service_count * per_service) +
        " endpoints) spread over the row's nodes. Simulated nodes on two loop threads: the first " +
        std::to_string(max_agents) +
        " are agents' whole control planes (watch, watch-fed cache, state kept by deltas, the real ServiceProgrammer "
        "into a dataplane that only counts, programmed generation reported), the others hold a lease and a watch and "
        "decode every event. Each change is one `svc apply` of a new Service selecting 5 existing backends, timed "
        "from the apply's start until every node has it programmed (agents) or decoded (watchers). Medians and p99 "
        "over the changes of the slowest node's time.";
    ProgressBar progress("bench control-plane", static_cast<int>(sizes.size()) + 1 + (quick ? 1 : 3));

    std::vector<double> work_ms, full_ms, small_work_ms, small_full_ms;
    for (int n : sizes) {
      // etcd over gRPC (offcore's wire), the directory, and at the largest
      // size etcd over the gateway too: which wire carries 1,000 nodes' watches better.
      for (const char* mode : {"etcd", "dir", "gateway"}) {
        if (benchInterrupted()) return interruptedError().error();
        const bool etcd = std::string(mode) != "dir", gateway = std::string(mode) == "gateway";
        // The directory store on one machine, 10 nodes: each holds and
        // parses the whole state per change (more would not fit this machine).
        if (!etcd && n > 10) continue;
        if (gateway && (quick || n != sizes.back())) continue;
        Member member;
        OC_ASSIGN_OR_RETURN(Config c, storeConfig(root + "/" + mode + std::to_string(n), etcd ? &member : nullptr,
                                                  23790 + n + (gateway ? 2 : 0)));
        if (gateway) c.etcd_wire = "gateway";
        OC_ASSIGN_OR_RETURN(svc::ClusterStore writer, svc::ClusterStore::open(c));
        OC_TRY(bench::preloadCluster(writer, writer.storage(), {n, service_count, per_service}));
        bench::SimNodes sims;
        OC_TRY(sims.start(c, n, std::min(n, max_agents)));
        std::unique_ptr<kv::KvClient> counter_kv;
        std::unique_ptr<kv::Watch> counter;
        std::atomic<int64_t> events{0};
        if (etcd) {  // watch events per change: what one node's watch delivers
          OC_ASSIGN_OR_RETURN(kv::EtcdOptions o, kv::parseEtcdUrl(c.cluster_store, false));
          counter_kv = kv::makeEtcdClient(std::move(o));
          OC_ASSIGN_OR_RETURN(kv::RangeResult r, counter_kv->range("/offcore/", ""));
          OC_ASSIGN_OR_RETURN(counter, counter_kv->watch("/offcore/v1/", kv::prefixEnd("/offcore/v1/"), r.revision + 1,
                                                         [&events](const kv::WatchBatch& b) {
                                                           events += static_cast<int64_t>(b.events.size());
                                                         }));
        }
        double cpu0 = etcd ? processCpuSeconds(member.pid).valueOr(0) : 0;
        std::vector<double> slowest, all, per_change_events;
        const int k_max = etcd ? changes : dir_changes;
        for (int k = 0; k < k_max; ++k) {
          const std::string name = "chg" + std::to_string(k);
          events = 0;
          OC_ASSIGN_OR_RETURN(auto ms,
                              sims.change(writer, {bench::changeService(name, k)}, name, std::chrono::seconds(120)));
          slowest.push_back(*std::max_element(ms.begin(), ms.end()));
          all.insert(all.end(), ms.begin(), ms.end());
          // Events still in flight (the agents' reports are outside the watched prefix).
          std::this_thread::sleep_for(std::chrono::milliseconds(200));
          per_change_events.push_back(static_cast<double>(events.load()));
        }
        double cpu = etcd ? processCpuSeconds(member.pid).valueOr(0) - cpu0 : 0;
        // After the writer's apply returned (its commit): what propagation alone costs.
        std::vector<double> after_commit;
        auto apply_ms = sims.applyMs();
        for (size_t k = 0; k < slowest.size() && k < apply_ms.size(); ++k)
          after_commit.push_back(std::max(0.0, slowest[k] - apply_ms[k]));
        double rss = etcd ? processRssMiB(member.pid).valueOr(0) : 0;
        auto& row = results_[n];
        if (gateway) {
          row.gw_p50 = median(slowest);
          row.gw_p99 = percentile(slowest, 0.99);
          row.gw_after_p99 = percentile(after_commit, 0.99);
          row.gw_cpu_ms = 1000 * cpu / k_max;
          row.gw_rss = rss;
        } else if (etcd) {
          row.etcd_p50 = median(slowest);
          row.etcd_p99 = percentile(slowest, 0.99);
          row.etcd_node_p50 = median(all);
          row.etcd_cpu_ms = 1000 * cpu / k_max;
          row.etcd_rss = rss;
          row.events = median(per_change_events);
          row.apply_p50 = median(apply_ms);
          row.after_p50 = median(after_commit);
          row.after_p99 = percentile(after_commit, 0.99);
          if (n == sizes.front()) {
            auto w = sims.agentWorkMs();
            work_ms.insert(work_ms.end(), w.begin(), w.end());
            for (int r = 0; r < 5; ++r) {
              OC_ASSIGN_OR_RETURN(double f, sims.fullPassMs());
              full_ms.push_back(f);
            }
          }
        } else {
          row.dir_p50 = median(slowest);
          row.dir_p99 = percentile(slowest, 0.99);
          row.dir_node_p50 = median(all);
        }
        counter.reset();
        sims.stop();
        if (etcd && !gateway && n == sizes.front()) {  // the transports, on this member and its preloaded state
          OC_ASSIGN_OR_RETURN(transports_,
                              bench::compareEtcdTransports("http://" + member.url.substr(7), "/offcore/v1/",
                                                           "/offcore-bench-scratch/", quick ? 3 : 10));
        }
      }
      progress.step(std::to_string(n) + " nodes");
    }

    // The same per-change work at a tenth of the Services: O(changed) means it stays put.
    {
      Member member;
      OC_ASSIGN_OR_RETURN(Config c, storeConfig(root + "/small", &member, 23700));
      OC_ASSIGN_OR_RETURN(svc::ClusterStore writer, svc::ClusterStore::open(c));
      OC_TRY(bench::preloadCluster(writer, writer.storage(), {10, service_count / 10, per_service}));
      bench::SimNodes sims;
      OC_TRY(sims.start(c, 10, 10));
      for (int k = 0; k < changes; ++k) {
        const std::string name = "chg" + std::to_string(k);
        auto ms = sims.change(writer, {bench::changeService(name, k)}, name, std::chrono::seconds(120));
        if (!ms.ok()) return ms.error();
      }
      small_work_ms = sims.agentWorkMs();
      for (int r = 0; r < 5; ++r) {
        OC_ASSIGN_OR_RETURN(double f, sims.fullPassMs());
        small_full_ms.push_back(f);
      }
      sims.stop();
      progress.step("per-change work at " + std::to_string(service_count / 10) + " Services");
    }

    // Applying many Services at once, as a user does (`offcore svc apply -f`,
    // YAML parse included) and the store's part alone: one transaction on
    // etcd, one state.json write in the directory. Fresh stores, alternating.
    const int apply_runs = quick ? 1 : 3;
    std::vector<double> cmd_ms[2], store_ms[2];
    std::string yaml;
    for (int i = 0; i < apply_n; ++i) yaml += (i ? "---\n" : "") + serviceDoc("s" + std::to_string(i), i);
    OC_TRY(writeFileAtomic(root + "/apply.yaml", yaml));
    OC_ASSIGN_OR_RETURN(auto docs, services(0, apply_n, "s"));
    for (int run = 0; run < apply_runs; ++run) {
      for (bool etcd : {true, false}) {
        for (bool command : {true, false}) {
          Member member;
          OC_ASSIGN_OR_RETURN(Config c, storeConfig(root + "/apply-" + std::to_string(run) + (etcd ? "-etcd" : "-dir") +
                                                        (command ? "-cmd" : "-store"),
                                                    etcd ? &member : nullptr, 23780));
          auto t0 = Clock::now();
          if (command) {
            OC_TRY(runChecked({selfExe(), "svc", "apply", "--cluster", etcd ? c.cluster_store : c.cluster_dir, "-f",
                               root + "/apply.yaml"}));
          } else {
            OC_ASSIGN_OR_RETURN(svc::ClusterStore store, svc::ClusterStore::open(c));
            OC_TRY(applied(store, docs));
          }
          (command ? cmd_ms : store_ms)[etcd ? 0 : 1].push_back(msSince(t0));
        }
      }
      progress.step("apply " + std::to_string(apply_n) + ", run " + std::to_string(run + 1));
    }
    progress.finish();

    for (const auto& [n, r] : results_) {
      const std::string at = " (" + std::to_string(n) + " nodes)";
      const std::string kinds = std::to_string(std::min(n, max_agents)) + " agents" +
                                (n > max_agents ? " + " + std::to_string(n - max_agents) + " watchers" : "");
      report.rows.push_back({"change programmed on every node, p50" + at, "ms", r.etcd_p50, r.dir_p50, true,
                             kinds + "; p50 over nodes: etcd " + fmt(r.etcd_node_p50) + " ms" +
                                 (r.dir_node_p50 ? ", directory " + fmt(*r.dir_node_p50) + " ms"
                                                 : "; no directory baseline past 10 nodes (each node holds and "
                                                   "parses the whole state)")});
      report.rows.push_back({"change programmed on every node, p99" + at, "ms", r.etcd_p99, r.dir_p99, true,
                             std::to_string(changes) + " changes on etcd" +
                                 (r.dir_p99 ? ", " + std::to_string(dir_changes) + " in the directory" : "")});
      report.rows.push_back({"after the apply returned, every node programmed, p99" + at, "ms", r.after_p99,
                             std::nullopt, true,
                             "p50 " + fmt(r.after_p50) + " ms; the writer's apply itself: p50 " + fmt(r.apply_p50) +
                                 " ms (its reads, the checks, one transaction)"});
      if (r.gw_p99) {
        report.rows.push_back({"change on every node, p99" + at + ", gRPC vs gateway", "ms", r.etcd_p99, r.gw_p99, true,
                               "every node's client over etcd's gRPC API (offcore's default) vs over its HTTP/JSON "
                               "gateway (baseline), same member, state and changes; p50 " +
                                   fmt(r.etcd_p50) + " vs " + fmt(*r.gw_p50) + " ms"});
        report.rows.push_back({"after the apply returned, p99" + at + ", gRPC vs gateway", "ms", r.after_p99,
                               r.gw_after_p99, true, "propagation alone"});
        report.rows.push_back(
            {"etcd CPU per change" + at + ", gRPC vs gateway", "ms", r.etcd_cpu_ms, r.gw_cpu_ms, true,
             "etcd RSS " + fmt(r.etcd_rss) + " vs " + fmt(*r.gw_rss) + " MiB (one connection per node either way)"});
      }
      report.rows.push_back({"watch events per change, per node" + at, "events", r.events, std::nullopt, true,
                             "x " + std::to_string(n) + " nodes = " + fmt(r.events * n) + " deliveries per change"});
      report.rows.push_back({"etcd CPU per change" + at, "ms", r.etcd_cpu_ms, std::nullopt, true,
                             "etcd RSS " + fmt(r.etcd_rss) + " MiB"});
    }
    report.rows.push_back({"a node's work per change, " + std::to_string(service_count) + " Services", "ms",
                           median(work_ms), median(full_ms), true,
                           "refresh of the changed keys + program of the Services they reach (p99 " +
                               fmt(percentile(work_ms, 0.99)) +
                               " ms), against the same programmer reprogramming everything from the state in memory, "
                               "as a reconcile did before (baseline; it also copied the whole state first, not "
                               "counted)"});
    report.rows.push_back({"a node's work per change, " + std::to_string(service_count / 10) + " Services", "ms",
                           median(small_work_ms), median(small_full_ms), true,
                           "the same at a tenth of the cluster: the per-change work does not grow with it"});
    report.rows.push_back(
        {"etcd range of the whole state (" + std::to_string(transports_.keys) + " keys), gateway vs gRPC", "ms",
         transports_.gateway_range_ms, transports_.grpc_range_ms, true,
         fmt(static_cast<double>(transports_.bytes) / (1 << 20)) +
             " MiB of keys and values, decoded into them by offcore's two KvClients; baseline: the gRPC one "
             "(offcore's default wire)"});
    report.rows.push_back({"etcd write of one key, gateway vs gRPC", "ms", transports_.gateway_put_ms,
                           transports_.grpc_put_ms, true,
                           "a one-put transaction through each KvClient: the gateway's vs the gRPC one (the default)"});
    report.rows.push_back({"`svc apply -f` of " + std::to_string(apply_n) + " Services (the command)", "ms",
                           median(cmd_ms[0]), median(cmd_ms[1]), true,
                           "YAML parse included; " + std::to_string(apply_runs) + " runs, fresh stores"});
    report.rows.push_back({"store apply of " + std::to_string(apply_n) + " Services (parsed)", "ms",
                           median(store_ms[0]), median(store_ms[1]), true,
                           "one transaction on etcd; one state.json write in the directory"});
    report.notes.push_back(
        "Past " + std::to_string(max_agents) +
        " nodes the extra nodes are watchers, not agents: a whole agent state at this scale is tens of MiB, and "
        "1,000 of them do not fit this machine's memory or its 2 cpus. Watchers still load etcd as agents do (a "
        "lease, a watch, every event delivered and decoded).");
    report.notes.push_back(
        "The time includes the writer's apply: on etcd it reads the VPCs, Subnets and Services (all a Service "
        "without a fixed address is checked against) at one revision, then one transaction; in the directory it "
        "parses and rewrites the whole state.json.");
    return report;
  }

 private:
  // A fresh store under dir: the directory, or (member given) an etcd member started there.
  Result<Config> storeConfig(const std::string& dir, Member* member, int port) const {
    OC_TRY(makeDirs(dir));
    Config c = config_;
    c.cluster_dir = dir + "/cluster";
    c.cluster_store.clear();
    // Simulated nodes' leases: 30 s, renewed every 10 s. A loop thread busy
    // with ten agents' first full programming must not let them lapse.
    c.node_expiry_ms = 30000;
    if (member) {
      OC_TRY(member->start(dir, port));
      c.cluster_store = member->url;
    }
    return c;
  }

  struct Row {
    double etcd_p50 = 0, etcd_p99 = 0, etcd_node_p50 = 0;
    std::optional<double> dir_p50, dir_p99, dir_node_p50;
    double etcd_cpu_ms = 0, etcd_rss = 0, events = 0, apply_p50 = 0, after_p50 = 0, after_p99 = 0;
    std::optional<double> gw_p50, gw_p99, gw_after_p99, gw_cpu_ms, gw_rss;  // every node over the gateway
  };
  static std::string fmt(double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.1f", v);
    return b;
  }
  Config config_;
  std::map<int, Row> results_;
  bench::TransportFigures transports_;
};

}  // namespace

std::unique_ptr<BenchSuite> makeControlPlaneSuite(const Config& config) {
  return std::make_unique<ControlPlaneSuite>(config);
}

}  // namespace offcore
