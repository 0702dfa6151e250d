// The etcd VolumeRecords (docs/ETCD.md, "Replicated volumes"):
//
//   /offcore/volumes/v1/records/<name>   the volume's record
//   /offcore/volumes/v1/lock             {"who","pid"} under the holder's lease
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
#include "volumes/volume_records.h"

namespace offcore::volumes {

using nlohmann::json;

namespace {

constexpr int64_t kLockTtlS = 10;
const std::string kRecords = std::string(kVolumesPrefix) + "records/";
const std::string kLockKey = std::string(kVolumesPrefix) + "lock";

// The compare every write makes while this store holds the lock.
struct Guard {
  std::mutex mu;
  std::optional<kv::Compare> compare;
};

class KvLock final : public VolumesLock {
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

class KvVolumeRecords final : public VolumeRecords {
 public:
  explicit KvVolumeRecords(std::shared_ptr<kv::KvClient> kv) : kv_(std::move(kv)), guard_(std::make_shared<Guard>()) {}

  Result<std::optional<std::string>> get(const std::string& name) override {
    OC_ASSIGN_OR_RETURN(auto r, kv_->range(kRecords + name, ""));
    if (r.kvs.empty()) return std::optional<std::string>{};
    return std::optional<std::string>(r.kvs[0].value);
  }

  Result<std::vector<std::string>> names() override {
    OC_ASSIGN_OR_RETURN(auto r, kv_->range(kRecords, kv::prefixEnd(kRecords)));
    std::vector<std::string> out;
    for (const auto& k : r.kvs) out.push_back(k.key.substr(kRecords.size()));
    return out;  // etcd ranges are sorted by key
  }

  Status put(const std::string& name, const std::string& text) override {
    return commit(kv::Op::put(kRecords + name, text), name);
  }
  Status remove(const std::string& name) override { return commit(kv::Op::del(kRecords + name), name); }

  Result<std::unique_ptr<VolumesLock>> lock(const std::string& who, int wait_s) override {
    OC_ASSIGN_OR_RETURN(auto lease, kv::LeaseKeeper::start(kv_, kLockTtlS));
    const std::string value = dumpJson(json{{"who", who}, {"pid", ::getpid()}});
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(wait_s);
    for (;;) {
      OC_ASSIGN_OR_RETURN(auto t, kv_->txn({{kLockKey, kv::Compare::Target::Create, kv::Compare::Result::Equal, 0, ""}},
                                           {kv::Op::put(kLockKey, value, lease->id())}));
      if (t.succeeded) {
        std::lock_guard<std::mutex> l(guard_->mu);
        guard_->compare = kv::Compare{kLockKey, kv::Compare::Target::Mod, kv::Compare::Result::Equal, t.revision, ""};
        return std::unique_ptr<VolumesLock>(std::make_unique<KvLock>(guard_, std::move(lease)));
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        std::string holder = "another command";
        if (auto r = kv_->range(kLockKey, ""); r.ok() && !r->kvs.empty()) {
          json j = json::parse(r->kvs[0].value, nullptr, false);
          if (j.is_object() && j.contains("who") && j["who"].is_string()) {
            holder = printableLine(j["who"].get<std::string>());
            if (j.contains("pid") && j["pid"].is_number_integer()) {
              holder += " (pid " + std::to_string(j["pid"].get<int>()) + ")";
            }
          }
        }
        return makeError("replicated volumes in " + kv_->describe() + " are being changed by " + holder + " for " +
                             std::to_string(wait_s) + " s now; try again once it is done",
                         EBUSY);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }

  std::string location() const override { return kv_->describe(); }

 private:
  Status commit(const kv::Op& op, const std::string& name) {
    std::vector<kv::Compare> compares;
    {
      std::lock_guard<std::mutex> l(guard_->mu);
      if (guard_->compare) compares.push_back(*guard_->compare);
    }
    OC_ASSIGN_OR_RETURN(auto t, kv_->txn(compares, {op}));
    if (!t.succeeded) {
      return makeError("volume " + name + " in " + kv_->describe() +
                           ": not written, this command no longer holds the volumes lock (its lease ran out)",
                       EBUSY);
    }
    return okStatus();
  }

  std::shared_ptr<kv::KvClient> kv_;
  std::shared_ptr<Guard> guard_;
};

}  // namespace

std::unique_ptr<VolumeRecords> makeKvVolumeRecords(std::shared_ptr<kv::KvClient> kv) {
  return std::make_unique<KvVolumeRecords>(std::move(kv));
}

}  // namespace offcore::volumes
