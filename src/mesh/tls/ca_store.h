// Where the mesh CA lives: its key, certificate and trust domain, as PEM
// text. Two Impls: a directory (ca.key 0600, ca.crt, trust_domain, a flock
// for the first creation: one machine) and etcd (one key,
// /offcore/mesh-ca/v1/ca, created only if absent: every machine of the
// cluster signs with one CA). Checking the material is Ca's (ca.h).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "base/result.h"
#include "kv/kv.h"

namespace offcore::mesh::tls {

struct CaMaterial {
  std::string trust_domain;
  std::string key_pem;
  std::string cert_pem;
};

class CaStore {
 public:
  virtual ~CaStore() = default;
  // nullopt: no CA yet.
  virtual Result<std::optional<CaMaterial>> load() = 0;
  // Stores `made` unless a CA is there already, and returns the one stored:
  // `made`, or the CA another creator stored first (two keepers starting at
  // once end up with one CA).
  virtual Result<CaMaterial> createOrLoad(const CaMaterial& made) = 0;
  virtual std::string location() const = 0;
};

std::unique_ptr<CaStore> makeDirCaStore(std::string dir);
std::unique_ptr<CaStore> makeKvCaStore(std::shared_ptr<kv::KvClient> kv);

inline constexpr const char* kMeshCaKey = "/offcore/mesh-ca/v1/ca";

}  // namespace offcore::mesh::tls
