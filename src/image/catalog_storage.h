// CatalogStorage: where the Catalog (catalog.h) keeps its records. Two
// Impls: a directory (one JSON document under an flock; the embedded
// default) and etcd (one key per record, for a cluster whose state lives
// there: docs/ETCD.md, "The image catalog").
//
// Records are JSON text (catalog_records.h reads and writes them); this
// layer only stores them. Sections: "layers" (by diff ID), "flat" (by chain
// ID), "images" (by reference). Blobs are content-addressed bytes (chunk
// indexes) by their digest ("sha256:<hex>"); the caller verifies what it
// reads against it.
//
// Threads: a storage may be used from any thread; update() is atomic
// against every other writer of the same catalog, in this process or not.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"

namespace offcore {

namespace kv {
class KvClient;
}

class CatalogStorage {
 public:
  virtual ~CatalogStorage() = default;

  // One record's text, or nullopt when there is none.
  virtual Result<std::optional<std::string>> get(const std::string& section, const std::string& key) const = 0;
  // Every record of a section: (key, text), sorted by key.
  virtual Result<std::vector<std::pair<std::string, std::string>>> list(const std::string& section) const = 0;
  // Read-modify-write of one record. mutate gets the current text (nullopt:
  // none) and returns the new text, nullopt to leave the record as it is, or
  // an error, which update returns without writing. mutate may run more than
  // once (a concurrent writer changed the record in between).
  using Mutation = std::function<Result<std::optional<std::string>>(const std::optional<std::string>& current)>;
  virtual Status update(const std::string& section, const std::string& key, const Mutation& mutate) = 0;

  // Content-addressed bytes under their digest (oci::isValidDigest).
  virtual Status putBlob(const std::string& digest, const std::string& bytes) = 0;
  // The bytes stored under digest, unverified; an error when there are none.
  virtual Result<std::string> blob(const std::string& digest) const = 0;

  // Where it lives, for messages and for a process started on it: a
  // directory or "etcd://host:port,...".
  virtual std::string location() const = 0;
};

// "layers", "flat" or "images".
inline bool isCatalogSection(const std::string& s) { return s == "layers" || s == "flat" || s == "images"; }

std::shared_ptr<CatalogStorage> makeDirCatalogStorage(std::string dir);
// Keys under /offcore/images/v1/ (outside the svc state's watched prefix).
std::shared_ptr<CatalogStorage> makeKvCatalogStorage(std::shared_ptr<kv::KvClient> client);

}  // namespace offcore
