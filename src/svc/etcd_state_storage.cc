// The etcd store. Layout (docs/ETCD.md):
//
//   /offcore/v1/meta/generation        the state's generation; every change
//                                      compares its mod revision and bumps it
//   /offcore/v1/<section>/<name>       one object of the state (section as in
//                                      state.json: vpcs, subnets, backends,
//                                      services, probes, endpoints, nodes)
//   /offcore/v1/health/<node>          that node's probe results
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
#include <mutex>
#include <random>
#include <thread>

#include "base/log.h"
#include "kv/etcd_client.h"
#include "svc/state_storage.h"

namespace offcore::svc {

namespace {

const std::string kPrefix = "/offcore/v1/";
const std::string kGenKey = kPrefix + "meta/generation";
const std::string kHealth = kPrefix + "health/";
const std::string kLive = kPrefix + "live/";
const std::string kOwners = kPrefix + "owners/";
constexpr int kMaxAttempts = 200;

bool plainName(const std::string& s) { return !s.empty() && s.find('/') == std::string::npos && s != "." && s != ".."; }

bool isStateSection(const std::string& key_rest) {
  for (const char* s : {"vpcs/", "subnets/", "backends/", "services/", "probes/", "endpoints/", "nodes/"}) {
    if (key_rest.rfind(s, 0) == 0) return true;
  }
  return false;
}

uint64_t wallMs() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
}

// What one read of the prefix saw.
struct Snapshot {
  ClusterState state;
  int64_t gen_mod = 0;                         // the generation key's mod revision (0: absent)
  std::map<std::string, std::string> objects;  // "<section>/<name>" -> JSON, as stored
};

class EtcdStoreWatch final : public StoreWatch {
 public:
  struct Shared {
    Shared(EventLoop& l, std::function<void()> c, kv::KvClient& k) : loop(l), changed(std::move(c)), kv(k) {}
    EventLoop& loop;
    std::function<void()> changed;
    kv::KvClient& kv;
    std::atomic<bool> pending{false};
    std::unique_ptr<kv::Watch> inner;  // loop thread only
  };

  explicit EtcdStoreWatch(std::shared_ptr<Shared> s) : s_(std::move(s)) {}
  ~EtcdStoreWatch() override { s_->inner.reset(); }
  EtcdStoreWatch(const EtcdStoreWatch&) = delete;
  EtcdStoreWatch& operator=(const EtcdStoreWatch&) = delete;

  // (Re)starts the etcd watch from the revision after `after`.
  static Status start(const std::shared_ptr<Shared>& s, int64_t after) {
    std::weak_ptr<Shared> weak = s;
    auto w = s->kv.watch(kPrefix, kv::prefixEnd(kPrefix), after + 1, [weak](const kv::WatchBatch& b) {
      auto sh = weak.lock();
      if (!sh) return;
      if (b.compacted > 0) {
        // History is gone: re-list (the agent reloads everything) and follow from now.
        spdlog::info("cluster store: changes before revision {} were compacted away; re-listing", b.compacted);
        sh->loop.post([weak] {
          auto s2 = weak.lock();
          if (!s2) return;
          s2->inner.reset();
          auto now = s2->kv.range(kGenKey, "");
          if (auto st = start(s2, now.ok() ? now->revision : 0); !st.ok())
            spdlog::warn("cluster store: watch: {}", st.error().message);
          s2->changed();
        });
        return;
      }
      if (sh->pending.exchange(true)) return;  // one reconcile covers a burst
      sh->loop.post([weak] {
        auto s2 = weak.lock();
        if (!s2) return;
        s2->pending = false;
        s2->changed();
      });
    });
    if (!w.ok()) return w.error();
    s->inner = std::move(*w);
    return okStatus();
  }

 private:
  std::shared_ptr<Shared> s_;
};

class EtcdStorage final : public StateStorage {
 public:
  EtcdStorage(std::unique_ptr<kv::KvClient> kv, int64_t lease_ttl_s) : kv_(std::move(kv)), ttl_(lease_ttl_s) {}

  Result<ClusterState> load() const override {
    OC_ASSIGN_OR_RETURN(Snapshot snap, read());
    return std::move(snap.state);
  }

  Status modify(const Change& fn, uint64_t* generation) override {
    std::minstd_rand jitter(std::random_device{}());
    for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
      OC_ASSIGN_OR_RETURN(Snapshot snap, read());
      ClusterState after = snap.state;
      OC_TRY(fn(after));
      after.generation = snap.state.generation;
      if (generation) *generation = snap.state.generation;
      if (after == snap.state) return okStatus();
      after.generation = snap.state.generation + 1;
      std::vector<kv::Op> ops;
      std::map<std::string, std::string> objects = stateObjects(after);
      for (const auto& [key, value] : objects) {
        auto was = snap.objects.find(key);
        if (was == snap.objects.end() || was->second != value) ops.push_back(kv::Op::put(kPrefix + key, value));
      }
      for (const auto& [key, value] : snap.objects) {
        if (!objects.count(key)) ops.push_back(kv::Op::del(kPrefix + key));
      }
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
    if (!plainName(node)) return makeError("heartbeat: bad node name '" + node + "'");
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
    lease_ = id;
    lease_node_ = node;
    return okStatus();
  }

  std::map<std::string, uint64_t> loadHeartbeats() const override {
    std::map<std::string, uint64_t> out;
    auto r = kv_->range(kLive, kv::prefixEnd(kLive));
    if (!r.ok()) {
      spdlog::warn("cluster store: liveness: {}", r.error().message);
      return out;
    }
    // A key there is a lease etcd still holds: the node is live now.
    uint64_t now = wallMs();
    for (const auto& kv : r->kvs) out[kv.key.substr(kLive.size())] = now;
    return out;
  }

  Status writeHealth(const NodeHealth& health) override {
    if (!plainName(health.node)) return makeError("write health: bad node name '" + health.node + "'");
    auto t = kv_->txn({}, {kv::Op::put(kHealth + health.node, healthToJson(health))});
    if (!t.ok()) return t.error().wrap("write health");
    return okStatus();
  }

  Result<std::map<std::string, NodeHealth>> loadHealth() const override {
    OC_ASSIGN_OR_RETURN(kv::RangeResult r, kv_->range(kHealth, kv::prefixEnd(kHealth)));
    std::map<std::string, NodeHealth> out;
    for (const auto& kv : r.kvs) {
      auto h = healthFromJson(kv.value, "etcd key " + kv.key);
      if (!h.ok()) {
        spdlog::warn("skipping health record: {}", h.error().message);
        continue;
      }
      out[h->node] = std::move(*h);
    }
    return out;
  }

  Status forgetNode(const std::string& node) override {
    if (!plainName(node)) return makeError("forget node: bad node name '" + node + "'");
    {
      std::lock_guard<std::mutex> lock(lease_mu_);
      if (lease_ != 0 && lease_node_ == node) {
        (void)kv_->leaseRevoke(lease_);
        lease_ = 0;
      }
    }
    auto t = kv_->txn({}, {kv::Op::del(kHealth + node), kv::Op::del(kLive + node)});
    if (!t.ok()) return t.error().wrap("forget node " + node);
    return okStatus();
  }

  Result<std::string> claim(const std::string& key, const std::string& node, bool want) override {
    if (key.empty() || key.find('/') != std::string::npos) return makeError("claim: bad key '" + key + "'");
    const std::string k = kOwners + key;
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
      if (t->succeeded) return node;
    } else {
      kv::Compare mine{k, kv::Compare::Target::Value, kv::Compare::Result::Equal, 0, node};
      auto t = kv_->txn({mine}, {kv::Op::del(k)});
      if (!t.ok()) return t.error().wrap("release " + key);
    }
    OC_ASSIGN_OR_RETURN(kv::RangeResult r, kv_->range(k, ""));
    return r.kvs.empty() ? std::string() : r.kvs[0].value;
  }

  Result<std::map<std::string, std::string>> claims() const override {
    OC_ASSIGN_OR_RETURN(kv::RangeResult r, kv_->range(kOwners, kv::prefixEnd(kOwners)));
    std::map<std::string, std::string> out;
    for (const auto& kv : r.kvs) out[kv.key.substr(kOwners.size())] = kv.value;
    return out;
  }

  Result<std::unique_ptr<StoreWatch>> watch(EventLoop& loop, std::function<void()> changed) override {
    auto now = kv_->range(kGenKey, "");
    if (!now.ok()) return now.error().wrap("cluster store: watch");
    auto shared = std::make_shared<EtcdStoreWatch::Shared>(loop, std::move(changed), *kv_);
    OC_TRY(EtcdStoreWatch::start(shared, now->revision));
    return std::unique_ptr<StoreWatch>(std::make_unique<EtcdStoreWatch>(std::move(shared)));
  }

  std::string describe() const override { return kv_->describe(); }

 private:
  Result<Snapshot> read() const {
    auto r = kv_->range(kPrefix, kv::prefixEnd(kPrefix));
    if (!r.ok()) return r.error().wrap("cluster store");
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
      if (!isStateSection(rest)) continue;
      OC_TRY(readStateObject(snap.state, rest, kv.value, describe() + " key " + kv.key));
      snap.objects[rest] = kv.value;
    }
    return snap;
  }

  std::unique_ptr<kv::KvClient> kv_;
  int64_t ttl_;
  std::mutex lease_mu_;
  int64_t lease_ = 0;  // this process's node lease, guarded by lease_mu_
  std::string lease_node_;
};

}  // namespace

std::shared_ptr<StateStorage> makeEtcdStorage(std::unique_ptr<kv::KvClient> kv, int64_t lease_ttl_s) {
  return std::make_shared<EtcdStorage>(std::move(kv), lease_ttl_s);
}

}  // namespace offcore::svc
