// The directory CatalogStorage: catalog.json (every record) read and
// replaced whole under catalog.lock's flock, written atomically (rename), so
// a crash leaves the old or the new version; blobs as indexes/<hex>.idx.
// Files 0600, the directory 0700.
#include <nlohmann/json.hpp>

#include "base/files.h"
#include "base/json.h"
#include "image/catalog_storage.h"
#include "image/oci.h"

namespace offcore {

namespace {

using nlohmann::json;

// indexes/<hex>.idx for a well-formed digest, else empty.
std::string blobFile(const std::string& dir, const std::string& digest) {
  return oci::isValidDigest(digest) ? dir + "/indexes/" + digest.substr(7) + ".idx" : "";
}

class DirCatalogStorage final : public CatalogStorage {
 public:
  explicit DirCatalogStorage(std::string dir) : dir_(std::move(dir)) {}

  Result<std::optional<std::string>> get(const std::string& section, const std::string& key) const override {
    OC_ASSIGN_OR_RETURN(json doc, load());
    OC_TRY(checkSection(section));
    const json& s = doc[section];
    auto it = s.find(key);
    if (it == s.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->dump());
  }

  Result<std::vector<std::pair<std::string, std::string>>> list(const std::string& section) const override {
    OC_ASSIGN_OR_RETURN(json doc, load());
    OC_TRY(checkSection(section));
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& [k, v] : doc[section].items()) out.emplace_back(k, v.dump());
    return out;
  }

  Status update(const std::string& section, const std::string& key, const Mutation& mutate) override {
    OC_TRY(checkSection(section));
    OC_TRY(makePrivateDir(dir_));
    OC_ASSIGN_OR_RETURN(auto lock, FileLock::acquire(dir_ + "/catalog.lock"));
    OC_ASSIGN_OR_RETURN(json doc, load());
    json& s = doc[section];
    std::optional<std::string> current;
    if (auto it = s.find(key); it != s.end()) current = it->dump();
    OC_ASSIGN_OR_RETURN(std::optional<std::string> next, mutate(current));
    if (!next) return {};
    json j = json::parse(*next, nullptr, false);
    if (j.is_discarded() || !j.is_object())
      return makeError("catalog record " + section + "/" + key + " is not a JSON object");
    s[key] = std::move(j);
    return writeFileAtomic(path(), dumpJson(doc, 1) + "\n");
  }

  Status putBlob(const std::string& digest, const std::string& bytes) override {
    std::string file = blobFile(dir_, digest);
    if (file.empty()) return makeError("catalog blob name '" + digest + "' is not a sha256 digest", EINVAL);
    OC_TRY(makePrivateDir(dir_));
    OC_TRY(makePrivateDir(dir_ + "/indexes"));
    return writeFileAtomic(file, bytes);
  }

  Result<std::string> blob(const std::string& digest) const override {
    std::string file = blobFile(dir_, digest);
    if (file.empty()) return makeError("catalog blob name '" + digest + "' is not a sha256 digest", EINVAL);
    return readFile(file);
  }

  std::string location() const override { return dir_; }

 private:
  std::string path() const { return dir_ + "/catalog.json"; }

  static Status checkSection(const std::string& section) {
    if (!isCatalogSection(section)) return makeError("catalog section '" + section + "' does not exist", EINVAL);
    return {};
  }

  Result<json> load() const {
    json empty{{"version", 1}, {"layers", json::object()}, {"flat", json::object()}, {"images", json::object()}};
    if (!pathExists(path())) return empty;
    OC_ASSIGN_OR_RETURN(std::string text, readFile(path()));
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("layers") || !j["layers"].is_object() ||
        !j.contains("images") || !j["images"].is_object()) {
      return makeError(path() + " is corrupt (not a catalog document); move it away and convert again");
    }
    if (!j.contains("flat") || !j["flat"].is_object()) j["flat"] = json::object();
    return j;
  }

  std::string dir_;
};

}  // namespace

std::shared_ptr<CatalogStorage> makeDirCatalogStorage(std::string dir) {
  return std::make_shared<DirCatalogStorage>(std::move(dir));
}

}  // namespace offcore
