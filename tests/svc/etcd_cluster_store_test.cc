// ClusterStore on etcd: the layout (one key per object), transactions that
// lose no update and never hand out one address twice, node leases, and the
// watch that tells an agent to reprogram, also across a compaction.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <set>
#include <thread>

#include "../kv/etcd_member.h"
#include "../kv/fake_kv.h"
#include "svc/cluster_store.h"
#include "svc/liveness.h"

namespace offcore::svc {
namespace {

const char* kNet = R"(apiVersion: offcore.io/v1
kind: Subnet
metadata: {name: pods}
spec: {cidr: 10.20.0.0/16, gateway: 10.20.0.1}
)";

std::string serviceYaml(int i) {
  return "apiVersion: offcore.io/v1\nkind: Service\nmetadata: {name: s" + std::to_string(i) +
         "}\nspec:\n  selector: {app: a" + std::to_string(i) + "}\n  ports: [{port: 80, targetPort: 8080}]\n";
}

std::vector<Resource> parse(const std::string& yaml) {
  auto r = parseResources(yaml, "test.yaml");
  EXPECT_TRUE(r.ok()) << r.error().message;
  return r.ok() ? *r : std::vector<Resource>{};
}

EndpointRequest pod(const std::string& node, int i) {
  EndpointRequest r;
  r.node = node;
  r.container_id = "c" + std::to_string(i);
  r.ifname = "eth0";
  r.pod_name = "p" + std::to_string(i);
  r.subnet = "pods";
  return r;
}

// Runs an EventLoop on its own thread for the watch tests.
class LoopThread {
 public:
  LoopThread() {
    EXPECT_TRUE(loop.init().ok());
    thread_ = std::thread([this] { (void)loop.run(); });
  }
  ~LoopThread() {
    loop.stop();
    thread_.join();
  }
  // store's watch on this loop, counting its calls (and in *fulls those
  // that say anything may have changed: a listing); null (and a test
  // failure) when it cannot start. Destroy it with sync().
  std::unique_ptr<StoreWatch> watch(ClusterStore& store, std::atomic<int>& calls, std::atomic<int>* fulls = nullptr) {
    std::unique_ptr<StoreWatch> w;
    sync([&] {
      auto made = store.watch(loop, [&calls, fulls](const StateDelta& d) {
        ++calls;
        if (fulls && d.full) ++*fulls;
      });
      if (made.ok()) {
        w = std::move(*made);
      } else {
        ADD_FAILURE() << made.error().message;
      }
    });
    return w;
  }
  // Runs fn on the loop's thread and waits for it.
  void sync(std::function<void()> fn) {
    std::atomic<bool> done{false};
    loop.post([&] {
      fn();
      done = true;
    });
    while (!done) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EventLoop loop;

 private:
  std::thread thread_;
};

// Another client of the same fake etcd: two agents (two processes in real
// life), each its own storage and lease, one etcd.
struct Shared final : kv::KvClient {
  explicit Shared(std::shared_ptr<kv::FakeKv> k) : k(std::move(k)) {}
  Result<kv::RangeResult> range(const std::string& a, const std::string& b, int64_t r) override {
    return k->range(a, b, r);
  }
  Result<kv::TxnResult> txn(const std::vector<kv::Compare>& c, const std::vector<kv::Op>& s,
                            const std::vector<kv::Op>& f) override {
    return k->txn(c, s, f);
  }
  Result<int64_t> leaseGrant(int64_t t) override { return k->leaseGrant(t); }
  Result<int64_t> leaseKeepAlive(int64_t id) override { return k->leaseKeepAlive(id); }
  Status leaseRevoke(int64_t id) override { return k->leaseRevoke(id); }
  Result<std::unique_ptr<kv::Watch>> watch(const std::string& a, const std::string& b, int64_t r,
                                           kv::WatchCallback fn) override {
    return k->watch(a, b, r, std::move(fn));
  }
  Status compact(int64_t r) override { return k->compact(r); }
  std::string describe() const override { return "shared-fake"; }
  std::shared_ptr<kv::FakeKv> k;
};

bool waitUntil(const std::function<bool()>& cond, int ms = 5000) {
  for (int i = 0; i < ms / 10; ++i) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return cond();
}

TEST(EtcdClusterStoreTest, KeepsOneKeyPerObjectAndTheRulesOfTheFileStore) {
  auto kv = std::make_unique<kv::FakeKv>();
  kv::FakeKv* raw = kv.get();
  ClusterStore store(makeEtcdStorage(std::move(kv), 5), AddressPlan("10.96.0.0/16"));
  auto empty = store.load();
  ASSERT_TRUE(empty.ok()) << empty.error().message;
  EXPECT_EQ(*empty, ClusterState::empty());

  auto applied = store.apply(parse(std::string(kNet) + "---\n" + serviceYaml(1)));
  ASSERT_TRUE(applied.ok()) << applied.error().message;
  EXPECT_EQ(applied->generation, 1u);
  auto keys = raw->range("/offcore/v1/", kv::prefixEnd("/offcore/v1/"));
  std::set<std::string> names;
  for (const auto& k : keys->kvs) names.insert(k.key);
  // The default VPC is in every state; it has a key only once it differs from the implicit one.
  EXPECT_EQ(names, (std::set<std::string>{"/offcore/v1/meta/generation", "/offcore/v1/services/s1",
                                          "/offcore/v1/subnets/pods"}));

  // Re-applying the same is no write at all.
  int64_t rev = raw->revision();
  auto again = store.apply(parse(std::string(kNet) + "---\n" + serviceYaml(1)));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->generation, 1u);
  EXPECT_EQ(raw->revision(), rev);

  // A change writes only what changed (the service) and the generation.
  ASSERT_TRUE(store.apply(parse(serviceYaml(2))).ok());
  auto s2 = raw->range("/offcore/v1/subnets/pods", "");
  EXPECT_EQ(s2->kvs[0].version, 1);

  auto ep = store.addEndpoint(pod("a", 1));
  ASSERT_TRUE(ep.ok()) << ep.error().message;
  EXPECT_EQ(ep->ip, "10.20.0.2");
  EXPECT_EQ(raw->range("/offcore/v1/endpoints/a/c1/eth0", "")->kvs.size(), 1u);
  // Rules still hold: a subnet in use cannot go.
  auto refused = store.remove("Subnet", "pods");
  ASSERT_FALSE(refused.ok());
  ASSERT_TRUE(store.removeEndpoint(ep->id).ok());
  ASSERT_TRUE(store.remove("Service", "s1").ok());
  auto state = store.load();
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->services.size(), 1u);
  EXPECT_TRUE(state->endpoints.empty());
  EXPECT_EQ(state->generation, 5u);
  EXPECT_TRUE(raw->range("/offcore/v1/services/s1", "")->kvs.empty());

  // A corrupt object is an error naming its key, never an empty state.
  ASSERT_TRUE(raw->txn({}, {kv::Op::put("/offcore/v1/services/bad", "{")}).ok());
  auto corrupt = store.load();
  ASSERT_FALSE(corrupt.ok());
  EXPECT_NE(corrupt.error().message.find("/offcore/v1/services/bad"), std::string::npos) << corrupt.error().message;
}

TEST(EtcdClusterStoreTest, NodeLivenessFollowsItsLease) {
  auto kv = std::make_unique<kv::FakeKv>();
  kv::FakeKv* raw = kv.get();
  ClusterStore store(makeEtcdStorage(std::move(kv), 5), AddressPlan("10.96.0.0/16"));
  ASSERT_TRUE(store.heartbeat("a", 1000).ok());
  ASSERT_TRUE(store.heartbeat("a", 2000).ok());  // a keep-alive, not a new lease
  EXPECT_EQ(raw->liveLeases(), 1u);
  EXPECT_EQ(store.loadHeartbeats().count("a"), 1u);
  auto lease = raw->range("/offcore/v1/live/a", "")->kvs.at(0).lease;
  raw->expire(lease);  // the agent stopped beating for the TTL
  EXPECT_EQ(store.loadHeartbeats().count("a"), 0u);
  ASSERT_TRUE(store.heartbeat("a", 9000).ok());  // back: a new lease
  EXPECT_EQ(store.loadHeartbeats().count("a"), 1u);
  ASSERT_TRUE(store.unregisterNode("a").ok());
  EXPECT_EQ(store.loadHeartbeats().count("a"), 0u);
  EXPECT_EQ(raw->liveLeases(), 0u);  // revoked with the node
}

TEST(EtcdClusterStoreTest, AnEipHasOneHolderUntilItsLeaseEnds) {
  auto kv = std::make_shared<kv::FakeKv>();
  ClusterStore a(makeEtcdStorage(std::make_unique<Shared>(kv), 5), "10.96.0.0/16");
  ClusterStore b(makeEtcdStorage(std::make_unique<Shared>(kv), 5), "10.96.0.0/16");
  EXPECT_FALSE(a.claim("10.77.200.1", "a", true).ok());  // no lease yet: no claim
  ASSERT_TRUE(a.heartbeat("a", 1).ok());
  ASSERT_TRUE(b.heartbeat("b", 1).ok());
  EXPECT_EQ(*a.claim("10.77.200.1", "a", true), "a");
  EXPECT_EQ(*b.claim("10.77.200.1", "b", true), "a");   // held: b waits
  EXPECT_EQ(*b.claim("10.77.200.1", "b", false), "a");  // b cannot release a's
  EXPECT_EQ(*a.claim("10.77.200.1", "a", true), "a");   // again: still a's
  EXPECT_EQ(a.claims()->at("10.77.200.1"), "a");
  // a dies: its lease ends, and the claim with it.
  kv->expire(kv->range("/offcore/v1/live/a", "")->kvs.at(0).lease);
  EXPECT_EQ(*b.claim("10.77.200.1", "b", true), "b");
  EXPECT_EQ(*b.claim("10.77.200.1", "b", false), "");
  EXPECT_TRUE(b.claims()->empty());
  // The directory store has no election.
  ClusterStore dir(std::string("/nonexistent-oc-dir"));
  EXPECT_EQ(*dir.claim("10.77.200.1", "a", true), "a");
  EXPECT_EQ(*dir.claim("10.77.200.1", "a", false), "");
}

TEST(EtcdClusterStoreTest, AWatchSaysWhichObjectsChangedAndRefreshCopiesOnlyThose) {
  auto kv = std::make_shared<kv::FakeKv>();
  ClusterStore agent(makeEtcdStorage(std::make_unique<Shared>(kv), 5), "10.96.0.0/16");
  ClusterStore cli(makeEtcdStorage(std::make_unique<Shared>(kv), 5), "10.96.0.0/16");
  ASSERT_TRUE(cli.apply(parse(kNet + std::string("---\n") + serviceYaml(1))).ok());
  LoopThread lt;
  std::mutex mu;
  std::vector<StateDelta> deltas;
  std::unique_ptr<StoreWatch> w;
  lt.sync([&] {
    auto made = agent.watch(lt.loop, [&](const StateDelta& d) {
      std::lock_guard<std::mutex> lock(mu);
      deltas.push_back(d);
    });
    ASSERT_TRUE(made.ok()) << made.error().message;
    w = std::move(*made);
  });
  auto state = agent.load();
  ASSERT_TRUE(state.ok());
  ASSERT_TRUE(cli.apply(parse(serviceYaml(2))).ok());
  for (int i = 0; i < 200; ++i) {
    std::lock_guard<std::mutex> lock(mu);
    if (!deltas.empty()) break;
    mu.unlock();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    mu.lock();
  }
  StateDelta d = StateDelta::none();
  {
    std::lock_guard<std::mutex> lock(mu);
    ASSERT_FALSE(deltas.empty());
    for (const auto& one : deltas) d.merge(one);
  }
  EXPECT_FALSE(d.full);
  EXPECT_EQ(d.objects, std::set<std::string>{"services/s2"});
  EXPECT_EQ(d.generation, 2u);
  // The agent's state catches up from the cache: no read of etcd.
  int64_t ranges = kv->ranges();
  auto reloaded = agent.refresh(*state, d);
  ASSERT_TRUE(reloaded.ok());
  EXPECT_FALSE(*reloaded);
  EXPECT_EQ(kv->ranges(), ranges);
  EXPECT_EQ(state->services.count("s2"), 1u);
  EXPECT_EQ(state->generation, 2u);
  auto direct = cli.load();
  ASSERT_TRUE(direct.ok());
  EXPECT_EQ(*state, *direct);
  // A node reporting the generation it runs, with the same probe results,
  // is not a change anyone watches; its report is still there to read.
  NodeHealth h;
  h.node = "a";
  h.programmed_generation = 2;
  ASSERT_TRUE(agent.writeHealth(h).ok());  // the first report holds the probe results: watched
  bool health_seen = false;
  for (int i = 0; i < 200 && !health_seen; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::lock_guard<std::mutex> lock(mu);
    for (const auto& one : deltas) health_seen = health_seen || one.health;
  }
  EXPECT_TRUE(health_seen);
  {
    std::lock_guard<std::mutex> lock(mu);
    deltas.clear();
  }
  h.programmed_generation = 3;
  ASSERT_TRUE(agent.writeHealth(h).ok());
  EXPECT_EQ(cli.loadProgrammed()->at("a"), 3u);
  lt.sync([] {});
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  lt.sync([] {});
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_TRUE(deltas.empty()) << "a status report woke the watch";
  }
  lt.sync([&] { w.reset(); });
}

TEST(EtcdClusterStoreTest, AWatchingAgentReadsFromWhatTheWatchSawNotFromEtcd) {
  auto kv = std::make_shared<kv::FakeKv>();
  ClusterStore agent(makeEtcdStorage(std::make_unique<Shared>(kv), 5), "10.96.0.0/16");
  ClusterStore cli(makeEtcdStorage(std::make_unique<Shared>(kv), 5), "10.96.0.0/16");
  ASSERT_TRUE(cli.apply(parse(kNet)).ok());
  LoopThread lt;
  std::atomic<int> calls{0};
  std::unique_ptr<StoreWatch> w = lt.watch(agent, calls);
  ASSERT_TRUE(w);
  // Another writer's change reaches the agent through the watch alone.
  ASSERT_TRUE(cli.apply(parse(serviceYaml(1))).ok());
  ASSERT_TRUE(cli.heartbeat("b", 1).ok());
  int64_t ranges = kv->ranges();
  auto seen = agent.load();
  ASSERT_TRUE(seen.ok());
  EXPECT_EQ(seen->services.count("s1"), 1u);
  EXPECT_EQ(seen->generation, 2u);
  EXPECT_EQ(agent.loadHeartbeats().count("b"), 1u);
  EXPECT_EQ(kv->ranges(), ranges) << "a read went to etcd";
  // Its own write is in its next read (read-your-writes), deletions too.
  auto ep = agent.addEndpoint(pod("a", 1));
  ASSERT_TRUE(ep.ok()) << ep.error().message;
  EXPECT_EQ(agent.load()->endpoints.count(ep->id), 1u);
  ASSERT_TRUE(cli.remove("Service", "s1").ok());
  EXPECT_EQ(agent.load()->services.count("s1"), 0u);
  ASSERT_TRUE(cli.unregisterNode("b").ok());
  EXPECT_EQ(agent.loadHeartbeats().count("b"), 0u);
  EXPECT_EQ(*agent.load(), *cli.load());  // the cache and etcd agree
  // Without the watch, reads go to etcd again.
  lt.sync([&] { w.reset(); });
  ranges = kv->ranges();
  ASSERT_TRUE(agent.load().ok());
  EXPECT_GT(kv->ranges(), ranges);
}

TEST(EtcdClusterStoreTest, AnUnreachableStoreIsAClearError) {
  auto kv = std::make_unique<kv::FakeKv>();
  kv->setDown(true);
  ClusterStore store(makeEtcdStorage(std::move(kv), 5), AddressPlan("10.96.0.0/16"));
  auto r = store.apply(parse(kNet));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("cluster store"), std::string::npos) << r.error().message;
  EXPECT_EQ(r.error().message.find('\n'), std::string::npos);
  Config c;
  c.cluster_store = "etcd://bad host:1";
  auto opened = ClusterStore::open(c);
  ASSERT_FALSE(opened.ok());
  auto unusable = openStateStorageOrUnusable(c);
  auto load = unusable->load();
  ASSERT_FALSE(load.ok());
  EXPECT_NE(load.error().message.find("etcd://host:port"), std::string::npos);
}

// Real etcd from here on.
class EtcdClusterStoreRealTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = member_.start();
    ASSERT_TRUE(s.ok()) << s.error().message;
  }
  ClusterStore store() const {
    return ClusterStore(makeEtcdStorage(kv::makeEtcdClient(member_.options()), 5), "10.96.0.0/16");
  }
  kv::EtcdMember member_;
};

TEST_F(EtcdClusterStoreRealTest, ParallelWritersLoseNoUpdateAndNeverShareAnAddress) {
  ASSERT_TRUE(store().apply(parse(kNet)).ok());
  // 8 applies at once, overlapping: each adds its own Service and re-applies a shared one.
  std::vector<std::thread> ts;
  std::atomic<int> failed{0};
  for (int i = 0; i < 8; ++i) {
    ts.emplace_back([&, i] {
      auto r = store().apply(parse(serviceYaml(100) + "---\n" + serviceYaml(i)));
      if (!r.ok()) ++failed;
    });
  }
  for (auto& t : ts) t.join();
  ts.clear();
  EXPECT_EQ(failed.load(), 0);
  // 200 endpoint adds over two nodes (two clients each), 16 threads.
  std::vector<ClusterStore> stores = {store(), store(), store(), store()};
  std::atomic<int> next{0};
  for (int t = 0; t < 16; ++t) {
    ts.emplace_back([&, t] {
      for (int i; (i = next++) < 200;) {
        auto r = stores[t % 4].addEndpoint(pod(t % 2 ? "b" : "a", i));
        if (!r.ok()) ++failed;
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(failed.load(), 0);

  // Checked against etcd's own contents, not the store's reading of them.
  auto raw = kv::makeEtcdClient(member_.options());
  auto svcs = raw->range("/offcore/v1/services/", kv::prefixEnd("/offcore/v1/services/"));
  ASSERT_TRUE(svcs.ok());
  EXPECT_EQ(svcs->kvs.size(), 9u);  // s0..s7 and s100
  std::set<std::string> vips;
  for (const auto& k : svcs->kvs) vips.insert(nlohmann::json::parse(k.value).value("clusterIP", ""));
  EXPECT_EQ(vips.size(), 9u) << "two Services got one ClusterIP";
  auto eps = raw->range("/offcore/v1/endpoints/", kv::prefixEnd("/offcore/v1/endpoints/"));
  ASSERT_TRUE(eps.ok());
  EXPECT_EQ(eps->kvs.size(), 200u);
  std::set<std::string> ips;
  for (const auto& k : eps->kvs) ips.insert(nlohmann::json::parse(k.value).value("ip", ""));
  EXPECT_EQ(ips.size(), 200u) << "an address was handed out twice";
  auto gen = raw->range("/offcore/v1/meta/generation", "");
  EXPECT_EQ(gen->kvs.at(0).value, std::to_string(1 + 8 + 200));  // one generation per change, none lost
}

// Forwards one loopback port to another; pause() drops every connection and
// refuses new ones until resume(): a member the client cannot reach.
class Forwarder {
 public:
  explicit Forwarder(int to) : to_(to) {
    listen_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    ::setsockopt(listen_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    bool ok = ::bind(listen_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
              ::getsockname(listen_, reinterpret_cast<sockaddr*>(&a), &len) == 0 && ::listen(listen_, 16) == 0;
    EXPECT_TRUE(ok) << "forwarder socket: " << std::strerror(errno);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~Forwarder() {
    stop_ = true;
    thread_.join();
    closeAll();
    ::close(listen_);
  }
  int port() const { return port_; }
  void pause() { paused_ = true; }
  void resume() { paused_ = false; }

 private:
  void closeAll() {
    for (auto [a, b] : pairs_) {
      ::close(a);
      ::close(b);
    }
    pairs_.clear();
  }
  void run() {
    while (!stop_) {
      if (paused_) {
        closeAll();
        int c = ::accept(listen_, nullptr, nullptr);
        if (c >= 0) ::close(c);
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        continue;
      }
      std::vector<pollfd> fds = {{listen_, POLLIN, 0}};
      for (auto [a, b] : pairs_) {
        fds.push_back({a, POLLIN, 0});
        fds.push_back({b, POLLIN, 0});
      }
      ::poll(fds.data(), fds.size(), 20);
      const size_t polled = pairs_.size();  // fds has entries for these only
      if (fds[0].revents & POLLIN) {
        int c = ::accept(listen_, nullptr, nullptr);
        if (c >= 0) {
          int u = ::socket(AF_INET, SOCK_STREAM, 0);
          sockaddr_in a{};
          a.sin_family = AF_INET;
          a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
          a.sin_port = htons(static_cast<uint16_t>(to_));
          if (::connect(u, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
            pairs_.push_back({c, u});
          } else {
            ::close(c);
            ::close(u);
          }
        }
      }
      std::vector<std::pair<int, int>> keep(pairs_.begin() + static_cast<std::ptrdiff_t>(polled), pairs_.end());
      for (size_t i = 0; i < polled; ++i) {
        auto [a, b] = pairs_[i];
        bool dead = false;
        for (auto [from, to] : {std::pair{a, b}, std::pair{b, a}}) {
          const pollfd& p = fds[1 + 2 * i + (from == a ? 0 : 1)];
          if (!(p.revents & (POLLIN | POLLHUP | POLLERR))) continue;
          char buf[65536];
          ssize_t n = ::read(from, buf, sizeof buf);
          if (n <= 0 || ::send(to, buf, static_cast<size_t>(n), MSG_NOSIGNAL) != n) dead = true;
        }
        if (dead) {
          ::close(a);
          ::close(b);
        } else {
          keep.push_back({a, b});
        }
      }
      pairs_ = keep;
    }
  }
  int to_, port_ = 0, listen_ = -1;
  std::atomic<bool> stop_{false}, paused_{false};
  std::vector<std::pair<int, int>> pairs_;  // (client, member), run() only
  std::thread thread_;
};

TEST_F(EtcdClusterStoreRealTest, TheWatchTellsOfChangesAndResumesAcrossACompaction) {
  int member_port = std::stoi(member_.url().substr(member_.url().rfind(':') + 1));
  Forwarder fwd(member_port);
  kv::EtcdOptions via = member_.options();
  via.endpoints = {"http://127.0.0.1:" + std::to_string(fwd.port())};
  ClusterStore watched(makeEtcdStorage(kv::makeEtcdClient(via), 5), "10.96.0.0/16");
  ClusterStore writer = store();

  LoopThread lt;
  std::atomic<int> calls{0}, listings{0};
  std::unique_ptr<StoreWatch> w = lt.watch(watched, calls, &listings);
  ASSERT_TRUE(w);
  ASSERT_TRUE(writer.apply(parse(kNet)).ok());
  EXPECT_TRUE(waitUntil([&] { return calls > 0; })) << "no call after an apply";
  EXPECT_EQ(listings, 0) << "a change told as a listing";

  // A node's health is a change too.
  int before = calls;
  NodeHealth h;
  h.node = "a";
  ASSERT_TRUE(writer.writeHealth(h).ok());
  EXPECT_TRUE(waitUntil([&] { return calls > before; })) << "no call after a health write";

  // The watcher loses its member; meanwhile the state moves on and history is compacted.
  fwd.pause();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  before = calls;
  ASSERT_TRUE(writer.apply(parse(serviceYaml(1))).ok());
  ASSERT_TRUE(writer.apply(parse(serviceYaml(3))).ok());
  auto raw = kv::makeEtcdClient(member_.options());
  auto rev = raw->range("/offcore/v1/meta/generation", "");
  ASSERT_TRUE(raw->compact(rev->revision).ok());
  fwd.resume();
  // It re-lists (a call that says anything may have changed: a plain
  // resume would name the objects) and follows from then on.
  EXPECT_TRUE(waitUntil([&] { return listings > 0; })) << "no re-list after the compaction";
  EXPECT_GT(calls, before);
  before = calls;
  ASSERT_TRUE(writer.apply(parse(serviceYaml(2))).ok());
  EXPECT_TRUE(waitUntil([&] { return calls > before; })) << "the watch did not follow after the re-list";
  auto seen = watched.load();
  ASSERT_TRUE(seen.ok());
  EXPECT_EQ(seen->services.size(), 3u);
  lt.sync([&] { w.reset(); });
}

}  // namespace
}  // namespace offcore::svc
