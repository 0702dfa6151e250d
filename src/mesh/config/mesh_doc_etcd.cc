// The mesh document in etcd: one key, /offcore/mesh/v1/config, holding the
// same JSON as the directory's file; a change is a transaction that compares
// the key's mod revision with the one read (0: not there yet) and puts the
// new document, retried on the winner's document when another writer won.
// Outside /offcore/v1/, so the agents' state watch never sees it.
#include <chrono>
#include <random>
#include <thread>

#include "kv/kv.h"
#include "mesh/config/mesh_doc.h"

namespace offcore::mesh {

namespace {

const std::string kKey = "/offcore/mesh/v1/config";
constexpr int kMaxAttempts = 200;

// A kv::Watch on the key that re-reads on the loop: events are posted there,
// a compaction (the watch ended) starts a new one from now, after a re-read.
class EtcdDocWatch final : public svc::StoreWatch {
 public:
  EtcdDocWatch(EventLoop& loop, std::shared_ptr<kv::KvClient> kv, std::function<void()> changed)
      : loop_(loop), kv_(std::move(kv)), changed_(std::move(changed)), alive_(std::make_shared<bool>(true)) {}
  ~EtcdDocWatch() override {
    *alive_ = false;  // tasks already posted find it gone (they run on this thread)
    watch_.reset();
  }
  EtcdDocWatch(const EtcdDocWatch&) = delete;
  EtcdDocWatch& operator=(const EtcdDocWatch&) = delete;

  // From the revision after rev (the watch's own read of the key): a change
  // after that read is delivered. A reader that watches first and then
  // loads (ClusterSnapshotSource) misses nothing.
  Status start(int64_t rev) {
    std::weak_ptr<bool> alive = alive_;
    OC_ASSIGN_OR_RETURN(watch_, kv_->watch(kKey, "", rev + 1, [this, alive](const kv::WatchBatch& b) {
      bool compacted = b.compacted > 0;
      loop_.post([this, alive, compacted] {
        auto a = alive.lock();
        if (!a || !*a) return;
        if (compacted) restart();
        changed_();
      });
    }));
    return okStatus();
  }

 private:
  // On the loop, after a compaction ended the watch (rare): one blocking
  // read of the key, at most the client's timeouts.
  void restart() {
    watch_.reset();
    auto now = kv_->range(kKey, "");
    Status s = now.ok() ? start(now->revision) : Status(now.error());
    if (!s.ok()) {
      // etcd unreachable: try again shortly; the document stays as last read.
      loop_.addTimer(std::chrono::seconds(1), [this, alive = std::weak_ptr<bool>(alive_)] {
        auto a = alive.lock();
        if (a && *a) restart();
      });
    }
  }

  EventLoop& loop_;
  std::shared_ptr<kv::KvClient> kv_;
  std::function<void()> changed_;
  std::shared_ptr<bool> alive_;
  std::unique_ptr<kv::Watch> watch_;
};

class MeshEtcdDoc final : public MeshDocStorage {
 public:
  explicit MeshEtcdDoc(std::shared_ptr<kv::KvClient> kv) : kv_(std::move(kv)) {}

  Result<StoredMesh> load() const override {
    OC_ASSIGN_OR_RETURN(auto r, kv_->range(kKey, ""));
    if (r.kvs.empty()) return StoredMesh{};
    return parseStoredMesh(r.kvs[0].value, describe());
  }

  Status modify(const Change& fn, uint64_t* generation) override {
    std::minstd_rand jitter(std::random_device{}());
    for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
      OC_ASSIGN_OR_RETURN(auto r, kv_->range(kKey, ""));
      StoredMesh before;
      int64_t read_at = 0;
      if (!r.kvs.empty()) {
        OC_ASSIGN_OR_RETURN(before, parseStoredMesh(r.kvs[0].value, describe()));
        read_at = r.kvs[0].mod_revision;
      }
      MeshConfig after = before.config;
      OC_TRY(fn(after));
      if (generation) *generation = before.generation;
      if (after == before.config) return okStatus();
      OC_ASSIGN_OR_RETURN(auto t, kv_->txn({{kKey, kv::Compare::Target::Mod, kv::Compare::Result::Equal, read_at, ""}},
                                           {kv::Op::put(kKey, storedMeshText({before.generation + 1, after}))}));
      if (t.succeeded) {
        if (generation) *generation = before.generation + 1;
        return okStatus();
      }
      std::this_thread::sleep_for(std::chrono::microseconds(jitter() % (200u * static_cast<unsigned>(attempt + 1))));
    }
    return makeError("mesh store " + describe() + ": " + std::to_string(kMaxAttempts) +
                         " attempts lost to other writers; run it again",
                     EAGAIN);
  }

  Result<std::unique_ptr<svc::StoreWatch>> watch(EventLoop& loop, std::function<void()> changed) override {
    OC_ASSIGN_OR_RETURN(auto now, kv_->range(kKey, ""));
    auto w = std::make_unique<EtcdDocWatch>(loop, kv_, std::move(changed));
    OC_TRY(w->start(now.revision));
    return std::unique_ptr<svc::StoreWatch>(std::move(w));
  }

  std::string describe() const override { return kv_->describe() + kKey; }

 private:
  std::shared_ptr<kv::KvClient> kv_;
};

}  // namespace

std::shared_ptr<MeshDocStorage> makeMeshEtcdDoc(std::shared_ptr<kv::KvClient> kv) {
  return std::make_shared<MeshEtcdDoc>(std::move(kv));
}

}  // namespace offcore::mesh
