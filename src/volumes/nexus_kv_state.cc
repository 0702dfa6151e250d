// The etcd NexusState (docs/ETCD.md, "Replicated volumes"):
//
//   /offcore/nexus/v1/claims/<replica>              {"owner","pid"}, under the holder's lease
//   /offcore/nexus/v1/journals/<id>/head            the record (encodeRecord), or a parts head
//   /offcore/nexus/v1/journals/<id>/parts/<set>/<n> part n of a record too big for one request
//
// A claim is every replica's key put in one transaction under a lease the
// claim renews (kv::LeaseKeeper); the transaction compares each key absent,
// or, for a key whose owner is the claimer's own (its restarted
// predecessor), unchanged since read. The journal's saves compare every
// claim key's mod revision with the one the claim put: a holder whose lease
// expired (its keys deleted) or was taken over saves nothing.
#include <cerrno>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "base/json.h"
#include "base/strings.h"
#include "kv/lease_keeper.h"
#include "volumes/nexus_state.h"

namespace offcore::volumes {

using nlohmann::json;

namespace {

constexpr size_t kInlineBytes = 1u << 20;       // a record up to this is one value
constexpr size_t kPartBytes = 512u << 10;       // else parts of this, one request each
constexpr size_t kMaxJournalBytes = 64u << 20;  // 8 replicas x 2^26 regions' worst bitmaps

const std::string kClaims = std::string(kNexusPrefix) + "claims/";
const std::string kJournals = std::string(kNexusPrefix) + "journals/";

// A replica name (ADDR:PORT/NQN) as one key segment: '/' and anything
// unusual become %XX, so two names never map to one key.
std::string claimKey(const std::string& replica) {
  std::string out = kClaims;
  for (unsigned char c : replica) {
    bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
                 c == '_' || c == ':';
    if (plain) {
      out += static_cast<char>(c);
    } else {
      char hex[4];
      std::snprintf(hex, sizeof hex, "%%%02X", c);
      out += hex;
    }
  }
  return out;
}

std::string journalDir(const std::string& id) { return kJournals + id + "/"; }

class KvClaim final : public nexus::ReplicaClaim {
 public:
  KvClaim(std::unique_ptr<kv::LeaseKeeper> lease, std::vector<kv::Compare> guards)
      : lease_(std::move(lease)), guards_(std::move(guards)) {}
  std::string lostReason() const override { return lease_->lostReason(); }
  const std::vector<kv::Compare>& guards() const { return guards_; }

 private:
  std::unique_ptr<kv::LeaseKeeper> lease_;  // revoked (the keys go) when the claim is dropped
  std::vector<kv::Compare> guards_;         // each key's mod revision as the claim put it
};

class KvJournal final : public nexus::NexusJournal {
 public:
  KvJournal(std::shared_ptr<kv::KvClient> kv, std::string id, std::vector<kv::Compare> guards,
            const nexus::ReplicaClaim* claim)
      : kv_(std::move(kv)), id_(std::move(id)), dir_(journalDir(id_)), guards_(std::move(guards)), claim_(claim) {}

  Result<std::optional<nexus::NexusRecord>> load() override {
    OC_ASSIGN_OR_RETURN(auto r, kv_->range(dir_, kv::prefixEnd(dir_)));
    const kv::KeyValue* head = nullptr;
    for (const auto& k : r.kvs) {
      if (k.key == dir_ + "head") head = &k;
    }
    if (!head) return std::optional<nexus::NexusRecord>{};
    std::string text = head->value;
    if (!text.empty() && text[0] == '{' && text.find("\"parts\"") != std::string::npos) {
      auto assembled = assemble(text, r);
      if (!assembled.ok()) return assembled.error().wrap(where());
      text = std::move(*assembled);
    }
    auto rec = nexus::decodeRecord(text);
    if (!rec.ok()) return rec.error().wrap(where());
    return std::optional<nexus::NexusRecord>(std::move(*rec));
  }

  Status save(const nexus::NexusRecord& record) override {
    if (claim_) {
      if (std::string why = claim_->lostReason(); !why.empty()) {
        return makeError("not saving " + where() + ": the claim on its replicas may be gone (" + why + ")", EBUSY);
      }
    }
    std::string text = nexus::encodeRecord(record);
    if (text.size() > kMaxJournalBytes) {
      return makeError(where() + ": a record of " + std::to_string(text.size()) + " bytes is more than etcd keeps (" +
                           std::to_string(kMaxJournalBytes) + ")",
                       EFBIG);
    }
    const std::string parts = dir_ + "parts/";
    std::vector<kv::Op> ops;
    if (text.size() <= kInlineBytes) {
      ops = {kv::Op::put(dir_ + "head", text), kv::Op::del(parts, kv::prefixEnd(parts))};
    } else {
      // Parts under a new set first, each its own request; then the head
      // names the set and every other set goes, in one transaction.
      std::string set = newSet();
      const std::string mine = parts + set + "/";
      size_t n = (text.size() + kPartBytes - 1) / kPartBytes;
      for (size_t i = 0; i < n; ++i) {
        OC_TRY(commit({kv::Op::put(partKey(mine, i), text.substr(i * kPartBytes, kPartBytes))}));
      }
      json head{{"parts", n}, {"bytes", text.size()}, {"set", set}};
      ops = {kv::Op::put(dir_ + "head", dumpJson(head)), kv::Op::del(parts, mine),
             kv::Op::del(kv::prefixEnd(mine), kv::prefixEnd(parts))};
    }
    return commit(ops);
  }

 private:
  std::string where() const { return "nexus journal " + id_ + " in " + kv_->describe(); }

  static std::string partKey(const std::string& set_dir, size_t n) {
    char b[24];
    std::snprintf(b, sizeof b, "%06zu", n);
    return set_dir + b;
  }

  static std::string newSet() {
    std::random_device rd;
    char b[24];
    std::snprintf(b, sizeof b, "%08x%08x", rd(), rd());
    return b;
  }

  Status commit(const std::vector<kv::Op>& ops) {
    OC_ASSIGN_OR_RETURN(auto t, kv_->txn(guards_, ops));
    if (!t.succeeded) {
      return makeError("not saving " + where() +
                           ": its replicas are no longer claimed by this nexus (its lease ran out, or another took "
                           "them over)",
                       EBUSY);
    }
    return okStatus();
  }

  // The parts the head names, all read in the same range (one revision).
  Result<std::string> assemble(const std::string& head_text, const kv::RangeResult& r) const {
    json h = json::parse(head_text, nullptr, false);
    if (!h.is_object() || !h.contains("parts") || !h["parts"].is_number_unsigned() || !h.contains("bytes") ||
        !h["bytes"].is_number_unsigned() || !h.contains("set") || !h["set"].is_string()) {
      return makeError("its head is malformed", EIO);
    }
    uint64_t n = h["parts"].get<uint64_t>(), bytes = h["bytes"].get<uint64_t>();
    if (bytes > kMaxJournalBytes || n != (bytes + kPartBytes - 1) / kPartBytes) {
      return makeError("its head names " + std::to_string(n) + " parts for " + std::to_string(bytes) + " bytes", EIO);
    }
    const std::string mine = dir_ + "parts/" + h["set"].get<std::string>() + "/";
    std::string text;
    uint64_t next = 0;
    for (const auto& k : r.kvs) {
      if (k.key.rfind(mine, 0) != 0) continue;
      if (next >= n || k.key != partKey(mine, next))
        return makeError("part " + std::to_string(next) + " is missing", EIO);
      text += k.value;
      ++next;
    }
    if (next != n || text.size() != bytes) {
      return makeError("it has " + std::to_string(next) + " of " + std::to_string(n) + " parts, " +
                           std::to_string(text.size()) + " of " + std::to_string(bytes) + " bytes",
                       EIO);
    }
    return text;
  }

  std::shared_ptr<kv::KvClient> kv_;
  const std::string id_, dir_;
  const std::vector<kv::Compare> guards_;
  const nexus::ReplicaClaim* claim_;  // outlives the journal (the nexus's owner holds both)
};

class KvNexusState final : public NexusState {
 public:
  KvNexusState(std::shared_ptr<kv::KvClient> kv, int ttl_s) : kv_(std::move(kv)), ttl_s_(ttl_s) {}

  Result<std::unique_ptr<nexus::ReplicaClaim>> claim(const std::vector<std::string>& replicas,
                                                     const nexus::ClaimHolder& holder) override {
    std::map<std::string, std::string> keys;  // claim key -> replica
    for (const auto& r : replicas) keys.emplace(claimKey(r), r);
    OC_ASSIGN_OR_RETURN(auto lease, kv::LeaseKeeper::start(kv_, ttl_s_));
    const std::string value = dumpJson(json{{"owner", holder.owner}, {"pid", holder.pid}});
    for (int attempt = 0; attempt < 16; ++attempt) {
      std::vector<kv::Compare> compares;
      std::vector<kv::Op> puts;
      for (const auto& [key, replica] : keys) {
        OC_ASSIGN_OR_RETURN(auto r, kv_->range(key, ""));
        if (r.kvs.empty()) {
          compares.push_back({key, kv::Compare::Target::Create, kv::Compare::Result::Equal, 0, ""});
        } else {
          json j = json::parse(r.kvs[0].value, nullptr, false);
          std::string owner = j.is_object() && j.contains("owner") && j["owner"].is_string()
                                  ? j["owner"].get<std::string>()
                                  : std::string("an unreadable holder");
          if (owner != holder.owner) {
            int pid = j.is_object() && j.contains("pid") && j["pid"].is_number_integer() ? j["pid"].get<int>() : 0;
            // One line, whatever the key holds.
            std::string who = printableLine(nexus::ClaimHolder{owner, pid}.describe());
            return makeError("replica " + replica + " is in use by " + who +
                                 "; detach it there first (two writers would split the volume)",
                             EBUSY);
          }
          // Our own owner's (a restart of the same disk service): take it over.
          compares.push_back({key, kv::Compare::Target::Mod, kv::Compare::Result::Equal, r.kvs[0].mod_revision, ""});
        }
        puts.push_back(kv::Op::put(key, value, lease->id()));
      }
      OC_ASSIGN_OR_RETURN(auto t, kv_->txn(compares, puts));
      if (!t.succeeded) continue;  // someone moved in between: look again
      std::vector<kv::Compare> guards;
      for (const auto& [key, replica] : keys) {
        guards.push_back({key, kv::Compare::Target::Mod, kv::Compare::Result::Equal, t.revision, ""});
      }
      return std::unique_ptr<nexus::ReplicaClaim>(std::make_unique<KvClaim>(std::move(lease), std::move(guards)));
    }
    return makeError("could not claim the replicas in " + kv_->describe() + ": other claimers kept racing; try again",
                     EBUSY);
  }

  Result<std::shared_ptr<nexus::NexusJournal>> journal(const std::string& id,
                                                       const nexus::ReplicaClaim* claim) override {
    std::vector<kv::Compare> guards;
    if (claim) {
      const auto* mine = dynamic_cast<const KvClaim*>(claim);
      if (!mine) return makeError("nexus journal " + id + ": its claim was not made in " + kv_->describe(), EINVAL);
      guards = mine->guards();
    }
    return std::shared_ptr<nexus::NexusJournal>(std::make_shared<KvJournal>(kv_, id, std::move(guards), claim));
  }

  Status removeJournal(const std::string& id) override {
    const std::string dir = journalDir(id);
    OC_TRY(kv_->txn({}, {kv::Op::del(dir, kv::prefixEnd(dir))}));
    return okStatus();
  }

  std::string journalRef(const std::string& id) const override { return "etcd:" + id; }
  std::string location() const override { return kv_->describe(); }

 private:
  std::shared_ptr<kv::KvClient> kv_;
  const int ttl_s_;
};

}  // namespace

std::unique_ptr<NexusState> makeKvNexusState(std::shared_ptr<kv::KvClient> kv, int claim_ttl_s) {
  return std::make_unique<KvNexusState>(std::move(kv), claim_ttl_s);
}

}  // namespace offcore::volumes
