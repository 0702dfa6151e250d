// The mesh CA in etcd: one key, /offcore/mesh-ca/v1/ca, holding
// {"trust_domain", "cert", "key"} (PEM), put by a transaction that
// compares the key absent; the loser of a race reads the winner's. Outside
// /offcore/mesh/, which nodes (and so the proxy workers) read: only the
// mesh CA's etcd user and the admin reach it (docs/ETCD.md, "The mesh CA").
#include <nlohmann/json.hpp>

#include "base/json.h"
#include "mesh/tls/ca_store.h"

namespace offcore::mesh::tls {

namespace {

using nlohmann::json;

class KvCaStore final : public CaStore {
 public:
  explicit KvCaStore(std::shared_ptr<kv::KvClient> kv) : kv_(std::move(kv)) {}

  Result<std::optional<CaMaterial>> load() override {
    OC_ASSIGN_OR_RETURN(auto r, kv_->range(kMeshCaKey, ""));
    if (r.kvs.empty()) return std::optional<CaMaterial>{};
    OC_ASSIGN_OR_RETURN(CaMaterial m, parse(r.kvs[0].value));
    return std::optional<CaMaterial>(std::move(m));
  }

  Result<CaMaterial> createOrLoad(const CaMaterial& made) override {
    json j{{"trust_domain", made.trust_domain}, {"cert", made.cert_pem}, {"key", made.key_pem}};
    OC_ASSIGN_OR_RETURN(auto t, kv_->txn({{kMeshCaKey, kv::Compare::Target::Create, kv::Compare::Result::Equal, 0, ""}},
                                         {kv::Op::put(kMeshCaKey, dumpJson(j))}));
    if (t.succeeded) return made;
    OC_ASSIGN_OR_RETURN(auto have, load());
    if (!have) return makeError("mesh CA in " + location() + ": made by another keeper and gone again; retry", EAGAIN);
    return std::move(*have);
  }

  std::string location() const override { return kv_->describe() + " " + kMeshCaKey; }

 private:
  Result<CaMaterial> parse(const std::string& text) const {
    json j = json::parse(text, nullptr, false);
    auto field = [&](const char* k) -> const json* {
      return j.is_object() && j.contains(k) && j[k].is_string() ? &j[k] : nullptr;
    };
    const json *td = field("trust_domain"), *cert = field("cert"), *key = field("key");
    if (!td || !cert || !key) {
      return makeError("mesh CA in " + location() +
                       " is damaged (want {trust_domain, cert, key}); restore it or delete the key to make a new CA");
    }
    return CaMaterial{td->get<std::string>(), key->get<std::string>(), cert->get<std::string>()};
  }

  std::shared_ptr<kv::KvClient> kv_;
};

}  // namespace

std::unique_ptr<CaStore> makeKvCaStore(std::shared_ptr<kv::KvClient> kv) {
  return std::make_unique<KvCaStore>(std::move(kv));
}

}  // namespace offcore::mesh::tls
