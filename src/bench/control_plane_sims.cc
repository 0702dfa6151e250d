#include "bench/control_plane_sims.h"

#include <algorithm>
#include <atomic>
#include <cstdio>

#include "base/log.h"
#include "kv/etcd_client.h"
#include "kv/etcd_config.h"
#include "svc/service_programmer.h"

namespace offcore::bench {

namespace {

using Clock = std::chrono::steady_clock;
double msSince(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

const std::string kPrefix = "/offcore/v1/";

// A dataplane with no maps: counts what the programmer writes. Reads find
// nothing (a simulated node starts empty).
class CountingDataplane final : public Dataplane {
 public:
  Status setConfig(const oc_config&) override { return count(); }
  Status attach(const std::string&, const oc_iface_val&) override { return count(); }
  Status detach(const std::string&) override { return count(); }
  Status upsertEndpoint(const oc_ep_key&, const oc_ep_val&) override { return count(); }
  Status removeEndpoint(const oc_ep_key&) override { return count(); }
  Status upsertNode(uint32_t, const oc_node_val&) override { return count(); }
  Status removeNode(uint32_t) override { return count(); }
  Status upsertNativeNet(const oc_lpm_v4&, const oc_native_val&) override { return count(); }
  Status removeNativeNet(const oc_lpm_v4&) override { return count(); }
  Status upsertService(const oc_svc_key&, const oc_svc_val&) override { return count(); }
  Status removeService(const oc_svc_key&) override { return count(); }
  Status setBackend(uint32_t, const oc_backend_val&) override { return count(); }
  Status writeRing(uint32_t, std::span<const oc_ring_slot>) override { return count(); }
  Result<std::vector<std::pair<oc_ep_key, oc_ep_val>>> endpoints() const override {
    return std::vector<std::pair<oc_ep_key, oc_ep_val>>();
  }
  Result<std::vector<std::pair<uint32_t, oc_node_val>>> nodes() const override {
    return std::vector<std::pair<uint32_t, oc_node_val>>();
  }
  Result<std::vector<std::pair<oc_lpm_v4, oc_native_val>>> nativeNets() const override {
    return std::vector<std::pair<oc_lpm_v4, oc_native_val>>();
  }
  Result<std::vector<std::pair<oc_svc_key, oc_svc_val>>> services() const override {
    return std::vector<std::pair<oc_svc_key, oc_svc_val>>();
  }
  Result<std::vector<std::pair<uint32_t, oc_backend_val>>> backends() const override {
    return std::vector<std::pair<uint32_t, oc_backend_val>>();
  }
  std::span<const oc_ring_slot> ring() const override { return {}; }
  Result<std::vector<uint64_t>> stats() const override { return std::vector<uint64_t>(); }
  Result<std::vector<uint64_t>> statPerCpu(uint32_t) const override { return std::vector<uint64_t>(); }

  uint64_t writes = 0;

 private:
  Status count() {
    ++writes;
    return okStatus();
  }
};

std::string nodeName(int i) { return "sim" + std::to_string(i); }
std::string addr(int base_a, int base_b, int i) {
  return std::to_string(base_a) + "." + std::to_string(base_b) + "." + std::to_string(i / 250) + "." +
         std::to_string(i % 250 + 2);
}

svc::Resource resource(svc::Service s) {
  svc::Resource r;
  r.value = std::move(s);
  r.file = "bench";
  return r;
}

}  // namespace

svc::Resource changeService(const std::string& name, int like) {
  svc::Service s;
  s.name = name;
  s.vpc = svc::kDefaultVpc;
  s.ports = {svc::ServicePort{"", 80, 8080, "TCP", ""}};
  s.selector = {{"app", "a" + std::to_string(like)}};
  return resource(std::move(s));
}

Status preloadCluster(svc::ClusterStore& store, svc::StateStorage& storage, const ClusterShape& shape) {
  // Resources through the apply rules (validation, ClusterIPs), in one apply.
  std::vector<svc::Resource> docs;
  svc::Subnet subnet{"pods", svc::kDefaultVpc, "10.200.0.0/16", "10.200.0.1"};
  docs.push_back(svc::Resource{subnet, "bench", 0});
  const int endpoints = shape.services * shape.per_service;
  if (endpoints > 250 * 250) return makeError("bench: at most 62,500 endpoints fit the bench's /16");
  for (int j = 0; j < endpoints; ++j) {
    svc::Backend b;
    b.name = "b" + std::to_string(j);
    b.labels = {{"app", "a" + std::to_string(j / shape.per_service)}};
    b.kind = "pod";
    b.vpc = svc::kDefaultVpc;
    b.pod = "p" + std::to_string(j);
    docs.push_back(svc::Resource{b, "bench", 0});
  }
  for (int i = 0; i < shape.services; ++i) {
    svc::Resource r = changeService("s" + std::to_string(i), i);
    docs.push_back(std::move(r));
  }
  if (auto applied = store.apply(docs); !applied.ok()) return applied.error();
  // The nodes and the pods' endpoints, as registrations and CNI ADDs leave
  // them (addresses assigned here: one write instead of 50k IPAM rounds).
  return storage.modify(
      [&](svc::ClusterState& s) {
        for (int i = 0; i < shape.nodes; ++i) {
          char mac[32];
          std::snprintf(mac, sizeof mac, "02:00:00:%02x:%02x:01", (i >> 8) & 0xff, i & 0xff);
          s.nodes[nodeName(i)] = svc::NodeRecord{nodeName(i), addr(10, 250, i), addr(10, 251, i), mac, mac};
        }
        for (int j = 0; j < endpoints; ++j) {
          svc::Endpoint e;
          e.node = nodeName(j % shape.nodes);
          e.container_id = "c" + std::to_string(j);
          e.ifname = "eth0";
          e.id = e.node + "/" + e.container_id + "/eth0";
          e.pod_name = "p" + std::to_string(j);
          e.netns = "/var/run/netns/p" + std::to_string(j);
          e.vpc = svc::kDefaultVpc;
          e.subnet = "pods";
          e.ip = addr(10, 200, j);
          e.prefix_len = 16;
          s.endpoints[e.id] = e;
        }
        return okStatus();
      },
      nullptr);
}

struct SimNodes::Node {
  std::string name;
  EventLoop* loop = nullptr;
  std::shared_ptr<svc::StateStorage> storage;
  // agent
  std::unique_ptr<CountingDataplane> dp;
  std::unique_ptr<svc::ServiceProgrammer> programmer;
  svc::ClusterState state;
  bool have_state = false;
  uint64_t reported = 0;
  std::unique_ptr<svc::StoreWatch> watch;
  std::set<std::string> live;
  // watcher
  std::unique_ptr<kv::KvClient> kv;
  std::unique_ptr<kv::Watch> kv_watch;
};

SimNodes::SimNodes() = default;
SimNodes::~SimNodes() { stop(); }

Status SimNodes::start(const Config& config, int n, int agents) {
  for (auto& l : loops_) OC_TRY(l.init());
  for (auto& l : loops_) threads_.emplace_back([&l] { (void)l.run(); });
  seen_ms_.assign(static_cast<size_t>(n), -1.0);
  const bool etcd = kv::isEtcdUrl(config.cluster_store);
  for (int i = 0; i < n; ++i) {
    auto node = std::make_unique<Node>();
    node->name = nodeName(i);
    node->loop = &loops_[static_cast<size_t>(i) % 2];
    OC_ASSIGN_OR_RETURN(node->storage, svc::openStateStorage(config));
    OC_TRY(node->storage->heartbeat(node->name, 1));
    nodes_.push_back(std::move(node));
  }
  auto renewed = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) {
    Node& node = *nodes_[static_cast<size_t>(i)];
    const size_t at = static_cast<size_t>(i);
    Status s = okStatus();
    // Starting a thousand nodes (and an agent's first programming of a
    // large state) takes a while: keep every lease alive meanwhile (the
    // loops are busy or not beating yet, so from here).
    if (std::chrono::steady_clock::now() - renewed > std::chrono::milliseconds(config.node_expiry_ms / 3)) {
      for (auto& other : nodes_) (void)other->storage->heartbeat(other->name, 1);
      renewed = std::chrono::steady_clock::now();
    }
    if (i < agents || !etcd) {
      sync(*node.loop, [&] {
        node.dp = std::make_unique<CountingDataplane>();
        node.programmer = std::make_unique<svc::ServiceProgrammer>(*node.dp, svc::NodeIdentity{node.name, 0, 0});
        auto w = node.storage->watch(*node.loop, [this, at](const svc::StateDelta& d) { reconcile(at, d); });
        reconcile(at, svc::StateDelta());  // as an agent starts: everything, before the first change
        if (w.ok()) {
          node.watch = std::move(*w);
        } else {
          s = w.error();
        }
      });
    } else {
      OC_ASSIGN_OR_RETURN(kv::EtcdOptions o, kv::etcdOptionsFor(config, config.cluster_store));  // its wire too
      node.kv = kv::makeEtcdClient(std::move(o));
      OC_ASSIGN_OR_RETURN(kv::RangeResult r, node.kv->range(kPrefix + "meta/generation", ""));
      auto w = node.kv->watch(kPrefix, kv::prefixEnd(kPrefix), r.revision + 1, [this, at](const kv::WatchBatch& b) {
        // Decoded as the cache decodes them, then dropped.
        svc::ClusterState scratch;
        for (const auto& e : b.events) {
          std::string rest = e.kv.key.substr(std::min(e.kv.key.size(), kPrefix.size()));
          if (e.type == kv::WatchEvent::Type::Put && svc::isStateObjectKey(rest))
            (void)svc::readStateObject(scratch, rest, e.kv.value, e.kv.key);
        }
        bool has = false;
        {
          std::lock_guard<std::mutex> lock(mu_);
          has = !want_.empty() && scratch.services.count(want_);
        }
        if (has) seen(at);
      });
      if (!w.ok()) return w.error();
      node.kv_watch = std::move(*w);
    }
    OC_TRY(s);
  }
  // Leases outlive the bench's pauses (config.node_expiry_ms); renewed at a
  // third of it, one node at a time spread over the period, on a thread of
  // their own: a node renews on its own cpu, not in the agents' loops.
  auto period = std::chrono::milliseconds(std::max(1000, config.node_expiry_ms / 3));
  leases_ = std::thread([this, period] { renewLeases(period); });
  // Let the start settle (each agent's first report makes the others
  // reprogram once): changes are measured on a cluster at rest.
  std::this_thread::sleep_for(std::chrono::seconds(2));
  for (auto& l : loops_) sync(l, [] {});
  return okStatus();
}

void SimNodes::renewLeases(std::chrono::milliseconds period) {
  const auto gap = period / static_cast<int64_t>(std::max<size_t>(1, nodes_.size()));
  std::unique_lock<std::mutex> lock(lease_mu_);
  for (size_t i = 0; !stop_leases_; i = (i + 1) % nodes_.size()) {
    if (lease_cv_.wait_for(lock, gap, [this] { return stop_leases_; })) break;
    lock.unlock();
    (void)nodes_[i]->storage->heartbeat(nodes_[i]->name, 1);
    lock.lock();
  }
}

void SimNodes::reconcile(size_t at, const svc::StateDelta& delta) {
  Node& node = *nodes_[at];
  auto t = Clock::now();
  svc::StateDelta d = delta;
  if (!node.have_state || d.full) {
    auto loaded = node.storage->load();
    if (!loaded.ok()) return;
    node.state = std::move(*loaded);
    d.full = true;
  } else {
    auto reloaded = node.storage->refresh(node.state, d);
    if (!reloaded.ok()) return;
    d.full = d.full || *reloaded;
  }
  node.have_state = true;
  if (d.full || d.live) {
    node.live.clear();
    for (const auto& [name, ms] : node.storage->loadHeartbeats()) node.live.insert(name);
  }
  if (auto st = node.programmer->program(node.state, {}, node.live, d); !st.ok()) {
    spdlog::warn("simulated node {}: programming: {}", node.name, st.error().message);
    return;
  }
  double work = msSince(t);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!d.full && !want_.empty()) work_ms_.push_back(work);  // the changes', not the start's
  }
  seen(at);
  if (node.state.generation != node.reported) {  // as an agent reports what it runs
    node.reported = node.state.generation;
    svc::NodeHealth h;
    h.node = node.name;
    h.programmed_generation = node.reported;
    (void)node.storage->writeHealth(h);
  }
}

void SimNodes::seen(size_t i) {
  std::lock_guard<std::mutex> lock(mu_);
  if (want_.empty() || seen_ms_[i] >= 0) return;
  Node& node = *nodes_[i];
  if (node.programmer && !node.state.services.count(want_)) return;
  seen_ms_[i] = msSince(t0_);
  cv_.notify_all();
}

Result<std::vector<double>> SimNodes::change(svc::ClusterStore& writer, const std::vector<svc::Resource>& docs,
                                             const std::string& service, std::chrono::seconds timeout) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    want_ = service;
    std::fill(seen_ms_.begin(), seen_ms_.end(), -1.0);
    t0_ = Clock::now();
  }
  if (auto applied = writer.apply(docs); !applied.ok()) return applied.error();
  std::unique_lock<std::mutex> lock(mu_);
  apply_ms_.push_back(msSince(t0_));
  bool all = cv_.wait_for(
      lock, timeout, [&] { return std::all_of(seen_ms_.begin(), seen_ms_.end(), [](double v) { return v >= 0; }); });
  if (!all) {
    long missing = std::count_if(seen_ms_.begin(), seen_ms_.end(), [](double v) { return v < 0; });
    return makeError("a change did not reach " + std::to_string(missing) + " of " + std::to_string(seen_ms_.size()) +
                     " simulated nodes within " + std::to_string(timeout.count()) + " s");
  }
  want_.clear();
  return seen_ms_;
}

std::vector<double> SimNodes::applyMs() const {
  std::lock_guard<std::mutex> lock(mu_);
  return apply_ms_;
}

std::vector<double> SimNodes::agentWorkMs() const {
  std::lock_guard<std::mutex> lock(mu_);
  return work_ms_;
}

Result<double> SimNodes::fullPassMs() {
  if (nodes_.empty() || !nodes_[0]->programmer) return makeError("no simulated agent");
  Node& node = *nodes_[0];
  Result<double> out = makeError("not run");
  sync(*node.loop, [&] {
    auto t = Clock::now();
    auto st = node.programmer->program(node.state, {}, node.live, svc::StateDelta());
    if (st.ok()) {
      out = msSince(t);
    } else {
      out = st.error();
    }
  });
  return out;
}

void SimNodes::stop() {
  if (leases_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(lease_mu_);
      stop_leases_ = true;
    }
    lease_cv_.notify_all();
    leases_.join();
  }
  for (auto& node : nodes_) {
    node->kv_watch.reset();
    if (node->watch) sync(*node->loop, [&] { node->watch.reset(); });
  }
  for (auto& l : loops_) l.stop();
  for (auto& t : threads_) t.join();
  threads_.clear();
  nodes_.clear();
}

void SimNodes::sync(EventLoop& loop, const std::function<void()>& fn) {
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
  loop.post([&] {
    fn();
    std::lock_guard<std::mutex> lock(m);
    done = true;
    cv.notify_all();
  });
  std::unique_lock<std::mutex> lock(m);
  cv.wait(lock, [&] { return done; });
}

}  // namespace offcore::bench
