// The etcd store. Layout (docs/ETCD.md):
//
//   /offcore/v1/meta/generation        the state's generation; every change
//                                      compares its mod revision and bumps it
//   /offcore/v1/<section>/<name>       one object of the state (section as in
//                                      state.json: vpcs, subnets, backends,
//                                      services, probes, endpoints, nodes)
//   /offcore/v1/health/<node>          that node's probe results (written
//                                      when they change)
//   /offcore/status/v1/<node>          the generation that node's dataplane
//                                      runs (after every change; outside
//                                      the watched prefix: n nodes reporting
//                                      a change cost nobody a watch event)
//   /offcore/v1/live/<node>            held by the node agent's lease
//   /offcore/v1/owners/<key>           who holds an EIP, under its lease
//
// A change reads the prefix, runs the rules on it and commits only the
// objects that changed, in one transaction that succeeds only if the
// generation key is still the one read: two writers never both win on one
// state, the loser runs its change again on the winner's (no lost update, no
// address handed out twice). Watchers follow the prefix from a revision.
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "base/log.h"
#include "kv/etcd_client.h"
#include "svc/etcd_state_cache.h"
#include "svc/state_storage.h"

namespace offcore::svc {

namespace {

const std::string kPrefix = "/offcore/v1/";
const std::string kGenKey = kPrefix + "meta/generation";
const std::string kHealth = kPrefix + "health/";
const std::string kStatus = "/offcore/status/v1/";
const std::string kLive = kPrefix + "live/";
const std::string kOwners = kPrefix + "owners/";
constexpr int kMaxAttempts = 200;
// How long a read waits for the watch to catch up with our own write before it asks etcd.
constexpr int kCacheWaitMs = 500;

uint64_t wallMs() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
}

// What one read of the prefix saw.
struct Snapshot {
  ClusterState state;
  int64_t gen_mod = 0;  // the generation key's mod revision (0: absent)
};

class EtcdStoreWatch final : public StoreWatch {
 public:
  struct Shared {
    Shared(EventLoop& l, StateStorage::Changed c, kv::KvClient& k, std::shared_ptr<EtcdStateCache> cache)
        : loop(l), changed(std::move(c)), kv(k), cache(std::move(cache)) {}
    EventLoop& loop;
    StateStorage::Changed changed;
    kv::KvClient& kv;
    std::shared_ptr<EtcdStateCache> cache;  // kept by the watch's events
    std::atomic<bool> pending{false};
    std::mutex mu;
    StateDelta delta = StateDelta::none();  // what the next notification covers, guarded by mu
    std::unique_ptr<kv::Watch> inner;       // loop thread only
  };

  explicit EtcdStoreWatch(std::shared_ptr<Shared> s) : s_(std::move(s)) {}
  ~EtcdStoreWatch() override {
    s_->inner.reset();
    s_->cache->invalidate();  // nobody keeps it current any more
  }
  EtcdStoreWatch(const EtcdStoreWatch&) = delete;
  EtcdStoreWatch& operator=(const EtcdStoreWatch&) = delete;

  // Lists the prefix into the cache, then follows it from the next revision.
  static Status start(const std::shared_ptr<Shared>& s) {
    auto listed = s->kv.range(kPrefix, kv::prefixEnd(kPrefix));
    if (!listed.ok()) return listed.error().wrap("cluster store: watch");
    OC_TRY(s->cache->reset(*listed));
    std::weak_ptr<Shared> weak = s;
    auto w = s->kv.watch(kPrefix, kv::prefixEnd(kPrefix), listed->revision + 1, [weak](const kv::WatchBatch& b) {
      auto sh = weak.lock();
      if (!sh) return;
      if (b.compacted > 0) {
        // History is gone: list again (the agent reloads everything) and follow from there.
        spdlog::info("cluster store: changes before revision {} were compacted away; re-listing", b.compacted);
        sh->cache->invalidate();
        sh->loop.post([weak] {
          auto s2 = weak.lock();
          if (!s2) return;
          s2->inner.reset();
          if (auto st = start(s2); !st.ok()) spdlog::warn("cluster store: watch: {}", st.error().message);
          notify(*s2, StateDelta());  // a new listing: anything may have changed
        });
        return;
      }
      sh->cache->apply(b);
      {
        std::lock_guard<std::mutex> lock(sh->mu);
        for (const auto& e : b.events) note(sh->delta, e);
      }
      if (sh->pending.exchange(true)) return;  // one reconcile covers a burst
      sh->loop.post([weak] {
        auto s2 = weak.lock();
        if (!s2) return;
        s2->pending = false;
        notify(*s2, StateDelta::none());
      });
    });
    if (!w.ok()) return w.error();
    s->inner = std::move(*w);
    return okStatus();
  }

 private:
  // Adds what one event changed to d.
  static void note(StateDelta& d, const kv::WatchEvent& e) {
    if (e.kv.key.compare(0, kPrefix.size(), kPrefix) != 0) return;
    const std::string rest = e.kv.key.substr(kPrefix.size());
    auto under = [&](const std::string& dir) { return e.kv.key.compare(0, dir.size(), dir) == 0; };
    if (e.kv.key == kGenKey) {
      if (e.type == kv::WatchEvent::Type::Put) d.generation = std::strtoull(e.kv.value.c_str(), nullptr, 10);
    } else if (under(kHealth)) {
      d.health = true;
    } else if (under(kLive)) {
      d.live = true;
    } else if (under(kOwners)) {
      d.owners = true;
    } else if (isStateObjectKey(rest)) {
      d.objects.insert(rest);
    }
  }
  // On the loop: what accumulated since the last call, plus extra.
  static void notify(Shared& s, const StateDelta& extra) {
    StateDelta d = StateDelta::none();
    {
      std::lock_guard<std::mutex> lock(s.mu);
      std::swap(d, s.delta);
    }
    d.merge(extra);
    if (!d.empty() || d.generation != 0) s.changed(d);
  }

  std::shared_ptr<Shared> s_;
};

class EtcdStorage final : public StateStorage {
 public:
  EtcdStorage(std::shared_ptr<kv::KvClient> kv, int64_t lease_ttl_s)
      : kv_(std::move(kv)), ttl_(lease_ttl_s), cache_(std::make_shared<EtcdStateCache>(kPrefix)) {}

  // From the watch's cache when a watch keeps one (and it has seen this
  // process's own last write), else from etcd.
  Result<ClusterState> load() const override {
    if (auto cached = cache_->state(own_rev_.load(), kCacheWaitMs)) return std::move(*cached);
    OC_ASSIGN_OR_RETURN(Snapshot snap, read());
    return std::move(snap.state);
  }

  Status modify(const Change& fn, uint64_t* generation, unsigned sections) override {
    std::minstd_rand jitter(std::random_device{}());
    for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
      OC_ASSIGN_OR_RETURN(Snapshot snap, read(sections));
      ClusterState after = snap.state;
      OC_TRY(fn(after));
      after.generation = snap.state.generation;
      if (generation) *generation = snap.state.generation;
      if (after == snap.state) return okStatus();
      after.generation = snap.state.generation + 1;
      std::vector<kv::Op> ops;
      std::map<std::string, std::string> puts;
      std::vector<std::string> deletes;
      diffStateObjects(snap.state, after, puts, deletes, sections);
      for (const auto& [key, value] : puts) ops.push_back(kv::Op::put(kPrefix + key, value));
      for (const auto& key : deletes) ops.push_back(kv::Op::del(kPrefix + key));
      ops.push_back(kv::Op::put(kGenKey, std::to_string(after.generation)));
      kv::Compare guard{kGenKey, kv::Compare::Target::Mod, kv::Compare::Result::Equal, snap.gen_mod, ""};
      auto t = kv_->txn({guard}, ops);
      if (!t.ok()) {
        if (t.error().code == EINVAL && t.error().message.find("too many operations") != std::string::npos) {
          return makeError("cluster store " + describe() + ": this change writes " + std::to_string(ops.size()) +
                               " keys in one transaction, more than etcd's --max-txn-ops allows; start etcd with "
                               "--max-txn-ops " +
                               std::to_string(ops.size()) + " or more, or apply fewer documents at once",
                           E2BIG);
        }
        return t.error().wrap("cluster store");
      }
      if (t->succeeded) {
        noteWrite(t->revision);
        if (generation) *generation = after.generation;
        return okStatus();
      }
      // Another writer won: run the change again on its state, after a short random wait.
      std::this_thread::sleep_for(std::chrono::microseconds(jitter() % (200u * static_cast<unsigned>(attempt + 1))));
    }
    return makeError("cluster store " + describe() + ": gave up after " + std::to_string(kMaxAttempts) +
                         " writes that raced others; try again",
                     EAGAIN);
  }

  Status heartbeat(const std::string& node, uint64_t now_ms) override {
    if (!isPlainName(node)) return makeError("heartbeat: bad node name '" + node + "'");
    std::lock_guard<std::mutex> lock(lease_mu_);
    if (lease_ != 0 && lease_node_ == node) {
      auto k = kv_->leaseKeepAlive(lease_);
      if (k.ok()) return okStatus();
      if (k.error().code != ENOENT) return k.error().wrap("heartbeat");
      spdlog::warn(
          "cluster store: node {}'s lease expired (etcd unreachable for longer than its {} s?); taking a new one", node,
          ttl_);
      lease_ = 0;
    }
    OC_ASSIGN_OR_RETURN(int64_t id, kv_->leaseGrant(ttl_));
    auto t = kv_->txn({}, {kv::Op::put(kLive + node, std::to_string(now_ms), id)});
    if (!t.ok()) {
      (void)kv_->leaseRevoke(id);
      return t.error().wrap("heartbeat");
    }
    noteWrite(t->revision);
    lease_ = id;
    lease_node_ = node;
    return okStatus();
  }

  std::map<std::string, uint64_t> loadHeartbeats() const override {
    std::map<std::string, uint64_t> out;
    // A key there is a lease etcd still holds: the node is live now.
    if (auto live = cache_->live(own_rev_.load(), kCacheWaitMs)) {
      for (const auto& node : *live) out[node] = wallMs();
      return out;
    }
    auto r = kv_->range(kLive, kv::prefixEnd(kLive));
    if (!r.ok()) {
      spdlog::warn("cluster store: liveness: {}", r.error().message);
      return out;
    }
    uint64_t now = wallMs();
    for (const auto& kv : r->kvs) out[kv.key.substr(kLive.size())] = now;
    return out;
  }

  Status writeHealth(const NodeHealth& health) override {
    if (!isPlainName(health.node)) return makeError("write health: bad node name '" + health.node + "'");
    // The probe results only when they changed: every node watches them.
    NodeHealth probes = health;
    probes.programmed_generation = 0;
    probes.updated_ms = 0;
    const std::string results = healthToJson(probes);
    std::vector<kv::Op> ops{kv::Op::put(kStatus + health.node, std::to_string(health.programmed_generation))};
    {
      std::lock_guard<std::mutex> lock(lease_mu_);
      auto last = health_written_.find(health.node);
      if (last == health_written_.end() || last->second != results)
        ops.push_back(kv::Op::put(kHealth + health.node, healthToJson(health)));
    }
    auto t = kv_->txn({}, ops);
    if (!t.ok()) return t.error().wrap("write health");
    if (ops.size() > 1) {
      noteWrite(t->revision);
      std::lock_guard<std::mutex> lock(lease_mu_);
      health_written_[health.node] = results;
    }
    return okStatus();
  }

  Result<std::map<std::string, uint64_t>> loadProgrammed() const override {
    OC_ASSIGN_OR_RETURN(kv::RangeResult r, kv_->range(kStatus, kv::prefixEnd(kStatus)));
    std::map<std::string, uint64_t> out;
    for (const auto& kv : r.kvs) out[kv.key.substr(kStatus.size())] = std::strtoull(kv.value.c_str(), nullptr, 10);
    return out;
  }

  Result<std::map<std::string, NodeHealth>> loadHealth() const override {
    if (auto cached = cache_->health(own_rev_.load(), kCacheWaitMs)) return std::move(*cached);
    OC_ASSIGN_OR_RETURN(kv::RangeResult r, kv_->range(kHealth, kv::prefixEnd(kHealth)));
    std::map<std::string, NodeHealth> out;
    for (const auto& kv : r.kvs) {
      if (auto h = readableHealth(kv.value, "etcd key " + kv.key)) out[h->node] = std::move(*h);
    }
    return out;
  }

  Status forgetNode(const std::string& node) override {
    if (!isPlainName(node)) return makeError("forget node: bad node name '" + node + "'");
    {
      std::lock_guard<std::mutex> lock(lease_mu_);
      if (lease_ != 0 && lease_node_ == node) {
        (void)kv_->leaseRevoke(lease_);
        lease_ = 0;
      }
    }
    {
      std::lock_guard<std::mutex> lock(lease_mu_);
      health_written_.erase(node);
    }
    auto t = kv_->txn({}, {kv::Op::del(kHealth + node), kv::Op::del(kLive + node), kv::Op::del(kStatus + node)});
    if (!t.ok()) return t.error().wrap("forget node " + node);
    return okStatus();
  }

  Result<std::string> claim(const std::string& key, const std::string& node, bool want) override {
    if (key.empty() || key.find('/') != std::string::npos) return makeError("claim: bad key '" + key + "'");
    const std::string k = kOwners + key;
    // What the watch has seen: holding it already costs no round trip.
    auto seen = cache_->owners(own_rev_.load(), kCacheWaitMs);
    if (seen && want && seen->count(key) && seen->at(key) == node) return node;
    if (seen && !want && (!seen->count(key) || seen->at(key) != node)) {
      return seen->count(key) ? seen->at(key) : std::string();
    }
    if (want) {
      int64_t lease;
      {
        std::lock_guard<std::mutex> lock(lease_mu_);
        lease = lease_node_ == node ? lease_ : 0;
      }
      if (lease == 0) return makeError("claim " + key + ": node " + node + " holds no lease (no heartbeat yet)");
      kv::Compare absent{k, kv::Compare::Target::Version, kv::Compare::Result::Equal, 0, ""};
      auto t = kv_->txn({absent}, {kv::Op::put(k, node, lease)});
      if (!t.ok()) return t.error().wrap("claim " + key);
      if (t->succeeded) {
        noteWrite(t->revision);
        return node;
      }
    } else {
      kv::Compare mine{k, kv::Compare::Target::Value, kv::Compare::Result::Equal, 0, node};
      auto t = kv_->txn({mine}, {kv::Op::del(k)});
      if (!t.ok()) return t.error().wrap("release " + key);
      if (t->succeeded) noteWrite(t->revision);
    }
    if (auto now = cache_->owners(own_rev_.load(), kCacheWaitMs)) return now->count(key) ? now->at(key) : std::string();
    OC_ASSIGN_OR_RETURN(kv::RangeResult r, kv_->range(k, ""));
    return r.kvs.empty() ? std::string() : r.kvs[0].value;
  }

  Result<std::map<std::string, std::string>> claims() const override {
    if (auto cached = cache_->owners(own_rev_.load(), kCacheWaitMs)) return std::move(*cached);
    OC_ASSIGN_OR_RETURN(kv::RangeResult r, kv_->range(kOwners, kv::prefixEnd(kOwners)));
    std::map<std::string, std::string> out;
    for (const auto& kv : r.kvs) out[kv.key.substr(kOwners.size())] = kv.value;
    return out;
  }

  Result<bool> refresh(ClusterState& state, const StateDelta& delta) const override {
    if (!delta.full && cache_->copyObjects(state, delta.objects, own_rev_.load(), kCacheWaitMs)) {
      state.generation = std::max(state.generation, delta.generation);
      return false;
    }
    OC_ASSIGN_OR_RETURN(state, load());
    return true;
  }

  Result<std::unique_ptr<StoreWatch>> watch(EventLoop& loop, Changed changed) override {
    auto shared = std::make_shared<EtcdStoreWatch::Shared>(loop, std::move(changed), *kv_, cache_);
    OC_TRY(EtcdStoreWatch::start(shared));
    return std::unique_ptr<StoreWatch>(std::make_unique<EtcdStoreWatch>(std::move(shared)));
  }

  std::string describe() const override { return kv_->describe(); }

 private:
  // The state, or only some of its sections: then one range per section,
  // all at the revision of the generation key's read (one snapshot).
  Result<Snapshot> read(unsigned sections = kAllSections) const {
    auto r = kv_->range(sections == kAllSections ? kPrefix : kGenKey,
                        sections == kAllSections ? kv::prefixEnd(kPrefix) : "");
    if (!r.ok()) return r.error().wrap("cluster store");
    if (sections != kAllSections) {
      for (const char* name : {"vpcs", "subnets", "backends", "services", "probes", "endpoints", "nodes"}) {
        const std::string dir = kPrefix + name + "/";
        if (!(sectionOf(std::string(name) + "/") & sections)) continue;
        auto part = kv_->range(dir, kv::prefixEnd(dir), r->revision);
        if (!part.ok()) return part.error().wrap("cluster store");
        r->kvs.insert(r->kvs.end(), std::make_move_iterator(part->kvs.begin()),
                      std::make_move_iterator(part->kvs.end()));
      }
    }
    Snapshot snap;
    snap.state = ClusterState::empty();
    for (const auto& kv : r->kvs) {
      std::string rest = kv.key.substr(kPrefix.size());
      if (kv.key == kGenKey) {
        snap.gen_mod = kv.mod_revision;
        char* end = nullptr;
        snap.state.generation = std::strtoull(kv.value.c_str(), &end, 10);
        if (end == kv.value.c_str() || *end != '\0')
          return makeError("cluster store " + describe() + ": " + kGenKey +
                           " is not a number; restore it from a backup");
        continue;
      }
      if (!isStateObjectKey(rest)) continue;
      OC_TRY(readStateObject(snap.state, rest, kv.value, describe() + " key " + kv.key));
    }
    return snap;
  }

  // Reads wait for the watch to have seen this revision: our own last write
  // (only writes that changed a key: a failed compare's revision may be
  // another prefix's, which this watch never sees).
  void noteWrite(int64_t revision) {
    int64_t seen = own_rev_.load();
    while (seen < revision && !own_rev_.compare_exchange_weak(seen, revision)) {}
  }

  std::shared_ptr<kv::KvClient> kv_;
  int64_t ttl_;
  std::shared_ptr<EtcdStateCache> cache_;
  std::atomic<int64_t> own_rev_{0};
  std::mutex lease_mu_;
  int64_t lease_ = 0;  // this process's node lease, guarded by lease_mu_
  std::string lease_node_;
  std::map<std::string, std::string> health_written_;  // by node: the probe results last written, guarded by lease_mu_
};

}  // namespace

std::shared_ptr<StateStorage> makeEtcdStorage(std::shared_ptr<kv::KvClient> kv, int64_t lease_ttl_s) {
  return std::make_shared<EtcdStorage>(std::move(kv), lease_ttl_s);
}

}  // namespace offcore::svc
