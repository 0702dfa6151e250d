// The etcd RecordStore (docs/ETCD.md, "Replicated volumes"), for a kind's
// prefix P (/offcore/volumes/v1/, /offcore/csi/v1/, /offcore/vms/v1/):
//
//   P records/<name>   a record
//   P lock             {"who","pid"} under the holder's lease
//
// The lock is taken by creating its key (create revision 0 compared), so
// one holder at a time cluster-wide; a holder that dies leaves it for at
// most the lease's TTL. While held, every put and remove also compares the
// lock key's mod revision: a holder whose lease ran out writes nothing.
#include <unistd.h>

#include <chrono>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/json.h"
#include "base/strings.h"
#include "kv/lease_keeper.h"
#include "volumes/record_store.h"

namespace offcore::volumes {

using nlohmann::json;

namespace {

constexpr int64_t kLockTtlS = 10;

// The compare every write makes while this store holds the lock.
struct Guard {
  std::mutex mu;
  std::optional<kv::Compare> compare;
};

class KvLock final : public RecordLock {
 public:
  KvLock(std::shared_ptr<Guard> guard, std::unique_ptr<kv::LeaseKeeper> lease)
      : guard_(std::move(guard)), lease_(std::move(lease)) {}
  ~KvLock() override {
    std::lock_guard<std::mutex> l(guard_->mu);
    guard_->compare.reset();
    // lease_ goes next: revoked, the lock key with it.
  }

 private:
  std::shared_ptr<Guard> guard_;
  std::unique_ptr<kv::LeaseKeeper> lease_;
};

class KvRecordStore final : public RecordStore {
 public:
  KvRecordStore(std::shared_ptr<kv::KvClient> kv, const RecordKind& kind)
      : kv_(std::move(kv)),
        guard_(std::make_shared<Guard>()),
        kind_(kind),
        records_(std::string(kind.prefix) + "records/"),
        lock_key_(std::string(kind.prefix) + "lock") {}

  Result<std::optional<std::string>> get(const std::string& name) override {
    OC_TRY(checkRecordName(name, kind_));
    OC_ASSIGN_OR_RETURN(auto r, kv_->range(records_ + name, ""));
    if (r.kvs.empty()) return std::optional<std::string>{};
    return std::optional<std::string>(r.kvs[0].value);
  }

  Result<std::vector<std::string>> names() override {
    OC_ASSIGN_OR_RETURN(auto r, kv_->range(records_, kv::prefixEnd(records_)));
    std::vector<std::string> out;
    for (const auto& k : r.kvs) out.push_back(k.key.substr(records_.size()));
    return out;  // etcd ranges are sorted by key
  }

  Status put(const std::string& name, const std::string& text) override {
    OC_TRY(checkRecordName(name, kind_));
    return commit({}, kv::Op::put(records_ + name, text), name);
  }
  Status create(const std::string& name, const std::string& text) override {
    OC_TRY(checkRecordName(name, kind_));
    kv::Compare absent{records_ + name, kv::Compare::Target::Create, kv::Compare::Result::Equal, 0, ""};
    return commit(absent, kv::Op::put(records_ + name, text), name);
  }
  Status remove(const std::string& name) override {
    OC_TRY(checkRecordName(name, kind_));
    return commit({}, kv::Op::del(records_ + name), name);
  }

  Result<std::unique_ptr<RecordLock>> lock(const std::string& who, int wait_s) override {
    OC_ASSIGN_OR_RETURN(auto lease, kv::LeaseKeeper::start(kv_, kLockTtlS));
    const std::string value = dumpJson(json{{"who", who}, {"pid", ::getpid()}});
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(wait_s);
    for (;;) {
      OC_ASSIGN_OR_RETURN(auto t,
                          kv_->txn({{lock_key_, kv::Compare::Target::Create, kv::Compare::Result::Equal, 0, ""}},
                                   {kv::Op::put(lock_key_, value, lease->id())}));
      if (t.succeeded) {
        std::lock_guard<std::mutex> l(guard_->mu);
        guard_->compare = kv::Compare{lock_key_, kv::Compare::Target::Mod, kv::Compare::Result::Equal, t.revision, ""};
        return std::unique_ptr<RecordLock>(std::make_unique<KvLock>(guard_, std::move(lease)));
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        std::string holder = "another command";
        if (auto r = kv_->range(lock_key_, ""); r.ok() && !r->kvs.empty()) {
          json j = json::parse(r->kvs[0].value, nullptr, false);
          if (j.is_object() && j.contains("who") && j["who"].is_string()) {
            holder = printableLine(j["who"].get<std::string>());
            if (j.contains("pid") && j["pid"].is_number_integer()) {
              holder += " (pid " + std::to_string(j["pid"].get<int>()) + ")";
            }
          }
        }
        return makeError(std::string(kind_.plural) + " in " + kv_->describe() + " are being changed by " + holder +
                             " for " + std::to_string(wait_s) + " s now; try again once it is done",
                         EBUSY);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }

  std::string location() const override { return kv_->describe(); }

 private:
  // `absent`: a create's compare. A failed transaction then says which
  // compare failed by whether the name is taken.
  Status commit(const std::optional<kv::Compare>& absent, const kv::Op& op, const std::string& name) {
    std::vector<kv::Compare> compares;
    {
      std::lock_guard<std::mutex> l(guard_->mu);
      if (guard_->compare) compares.push_back(*guard_->compare);
    }
    if (absent) compares.push_back(*absent);
    OC_ASSIGN_OR_RETURN(auto t, kv_->txn(compares, {op}));
    if (t.succeeded) return okStatus();
    if (absent) {
      OC_ASSIGN_OR_RETURN(auto have, get(name));
      if (have) return Error{EEXIST, std::string(kind_.noun) + " " + name + " exists in " + kv_->describe()};
    }
    return makeError(std::string(kind_.noun) + " " + name + " in " + kv_->describe() +
                         ": not written, this command no longer holds the lock of the " + kind_.plural +
                         " (its lease ran out)",
                     EBUSY);
  }

  std::shared_ptr<kv::KvClient> kv_;
  std::shared_ptr<Guard> guard_;
  RecordKind kind_;
  std::string records_, lock_key_;
};

}  // namespace

std::unique_ptr<RecordStore> makeKvRecordStore(std::shared_ptr<kv::KvClient> kv, const RecordKind& kind) {
  return std::make_unique<KvRecordStore>(std::move(kv), kind);
}

}  // namespace offcore::volumes
