// The etcd CatalogStorage: one key per record, a read-modify-write as a
// transaction comparing the record's mod revision (a concurrent writer makes
// it read again), blobs split into parts that each fit etcd's request limit
// (1.5 MiB by default) with a head key written last. Layout (docs/ETCD.md):
//
//   /offcore/images/v1/<section>/<key>      a record (JSON)
//   /offcore/images/v1/blobs/<hex>          {"bytes": N, "parts": n}
//   /offcore/images/v1/blobs/<hex>/<nnnnnn> part n of the blob
//
// Outside /offcore/v1/, so the agents' state watches never see it.
#include <nlohmann/json.hpp>

#include "image/catalog_records.h"
#include "image/catalog_storage.h"
#include "image/oci.h"
#include "kv/kv.h"

namespace offcore {

namespace {

using nlohmann::json;

const std::string kRoot = "/offcore/images/v1/";
constexpr size_t kPartBytes = 512u << 10;
constexpr uint64_t kMaxBlobBytes = 128ull << 20;  // a chunk index of a ~600 TiB layer
constexpr int kMaxAttempts = 32;

// The blob's head key for a well-formed digest, else empty.
std::string blobHead(const std::string& digest) {
  return oci::isValidDigest(digest) ? kRoot + "blobs/" + digest.substr(7) : "";
}

std::string partKey(const std::string& head, size_t n) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "/%06zu", n);
  return head + buf;
}

class KvCatalogStorage final : public CatalogStorage {
 public:
  explicit KvCatalogStorage(std::shared_ptr<kv::KvClient> kv) : kv_(std::move(kv)) {}

  Result<std::optional<std::string>> get(const std::string& section, const std::string& key) const override {
    OC_TRY(check(section, key));
    OC_ASSIGN_OR_RETURN(kv::RangeResult r, kv_->range(recordKey(section, key), ""));
    if (r.kvs.empty()) return std::optional<std::string>();
    return std::optional<std::string>(std::move(r.kvs[0].value));
  }

  Result<std::vector<std::pair<std::string, std::string>>> list(const std::string& section) const override {
    OC_TRY(check(section, "-"));
    std::string prefix = kRoot + section + "/";
    OC_ASSIGN_OR_RETURN(kv::RangeResult r, kv_->range(prefix, kv::prefixEnd(prefix)));
    std::vector<std::pair<std::string, std::string>> out;
    out.reserve(r.kvs.size());
    for (auto& k : r.kvs) out.emplace_back(k.key.substr(prefix.size()), std::move(k.value));
    return out;
  }

  Status update(const std::string& section, const std::string& key, const Mutation& mutate) override {
    OC_TRY(check(section, key));
    std::string k = recordKey(section, key);
    for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
      OC_ASSIGN_OR_RETURN(kv::RangeResult r, kv_->range(k, ""));
      std::optional<std::string> current;
      kv::Compare unchanged{k, kv::Compare::Target::Create, kv::Compare::Result::Equal, 0, ""};
      if (!r.kvs.empty()) {
        current = r.kvs[0].value;
        unchanged = {k, kv::Compare::Target::Mod, kv::Compare::Result::Equal, r.kvs[0].mod_revision, ""};
      }
      OC_ASSIGN_OR_RETURN(std::optional<std::string> next, mutate(current));
      if (!next) return {};
      json j = json::parse(*next, nullptr, false);
      if (j.is_discarded() || !j.is_object())
        return makeError("catalog record " + section + "/" + key + " is not a JSON object");
      OC_ASSIGN_OR_RETURN(kv::TxnResult t, kv_->txn({unchanged}, {kv::Op::put(k, *next)}));
      if (t.succeeded) return {};
    }
    return makeError("catalog record " + k + " in " + kv_->describe() + " changed " + std::to_string(kMaxAttempts) +
                         " times while this update ran; try again",
                     EAGAIN);
  }

  Status putBlob(const std::string& digest, const std::string& bytes) override {
    std::string head = blobHead(digest);
    if (head.empty()) return makeError("catalog blob name '" + digest + "' is not a sha256 digest", EINVAL);
    if (bytes.size() > kMaxBlobBytes)
      return makeError("catalog blob " + digest + " is " + std::to_string(bytes.size()) +
                       " bytes; the etcd catalog keeps at most " + std::to_string(kMaxBlobBytes) + " bytes per blob");
    size_t parts = (bytes.size() + kPartBytes - 1) / kPartBytes;
    std::string meta = blobHeadToJson(BlobHead{bytes.size(), parts});
    OC_ASSIGN_OR_RETURN(kv::RangeResult have, kv_->range(head, ""));
    if (!have.kvs.empty() && have.kvs[0].value == meta) return {};  // content-addressed: already there
    // Parts first, the head last: a reader finds the head only once every
    // part is in. One part per request keeps each under etcd's limit.
    for (size_t n = 0; n < parts; ++n) {
      OC_ASSIGN_OR_RETURN(kv::TxnResult t,
                          kv_->txn({}, {kv::Op::put(partKey(head, n), bytes.substr(n * kPartBytes, kPartBytes))}));
      (void)t;
    }
    OC_ASSIGN_OR_RETURN(kv::TxnResult t, kv_->txn({}, {kv::Op::put(head, meta)}));
    (void)t;
    return {};
  }

  Result<std::string> blob(const std::string& digest) const override {
    std::string head = blobHead(digest);
    if (head.empty()) return makeError("catalog blob name '" + digest + "' is not a sha256 digest", EINVAL);
    // The head and its parts in one read (one revision): no other key sorts
    // between them, since every blob name has the same length.
    OC_ASSIGN_OR_RETURN(kv::RangeResult r, kv_->range(head, kv::prefixEnd(head + "/")));
    if (r.kvs.empty() || r.kvs[0].key != head) return makeError(head + " is not in " + kv_->describe(), ENOENT);
    auto meta = blobHeadFromJson(r.kvs[0].value, kPartBytes, kMaxBlobBytes);
    if (!meta.ok())
      return makeError(head + " in " + kv_->describe() + " is not a blob head: " + meta.error().message, EIO);
    uint64_t size = meta->bytes;
    uint64_t parts = meta->parts;
    std::string out;
    out.reserve(size);
    for (uint64_t n = 0; n < parts; ++n) {
      if (n + 1 >= r.kvs.size() || r.kvs[n + 1].key != partKey(head, n)) {
        return makeError(
            head + " in " + kv_->describe() + " misses part " + std::to_string(n) + "; convert the image again", EIO);
      }
      out += r.kvs[n + 1].value;
      if (out.size() > size) break;
    }
    if (out.size() != size) {
      return makeError(head + " in " + kv_->describe() + " holds " + std::to_string(out.size()) + " bytes, not " +
                           std::to_string(size) + "; convert the image again",
                       EIO);
    }
    return out;
  }

  std::string location() const override { return kv_->describe(); }

 private:
  static std::string recordKey(const std::string& section, const std::string& key) {
    return kRoot + section + "/" + key;
  }

  static Status check(const std::string& section, const std::string& key) {
    if (!isCatalogSection(section)) return makeError("catalog section '" + section + "' does not exist", EINVAL);
    if (key.empty()) return makeError("catalog " + section + " key is empty", EINVAL);
    return {};
  }

  std::shared_ptr<kv::KvClient> kv_;
};

}  // namespace

std::shared_ptr<CatalogStorage> makeKvCatalogStorage(std::shared_ptr<kv::KvClient> client) {
  return std::make_shared<KvCatalogStorage>(std::move(client));
}

}  // namespace offcore
