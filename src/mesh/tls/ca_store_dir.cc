// The mesh CA in a directory: ca.key (0600), trust_domain, then ca.crt,
// written last (its presence means the CA is complete), under a flock on
// .lock so two keepers starting at once make one CA.
#include <cerrno>

#include "base/files.h"
#include "base/strings.h"
#include "mesh/tls/ca_store.h"

namespace offcore::mesh::tls {

namespace {

class DirCaStore final : public CaStore {
 public:
  explicit DirCaStore(std::string dir) : dir_(std::move(dir)) {}

  Result<std::optional<CaMaterial>> load() override {
    // The certificate is written last: without it there is no CA (yet).
    auto cert = readFile(certPath());
    if (!cert.ok()) {
      if (cert.error().code == ENOENT) return std::optional<CaMaterial>{};
      return cert.error();  // unreadable is not "absent": never make a second CA over it
    }
    CaMaterial m;
    m.cert_pem = std::move(*cert);
    OC_ASSIGN_OR_RETURN(std::string td, readFile(dir_ + "/trust_domain"));
    m.trust_domain = trim(td);
    OC_ASSIGN_OR_RETURN(m.key_pem, readFile(dir_ + "/ca.key"));
    return std::optional<CaMaterial>(std::move(m));
  }

  Result<CaMaterial> createOrLoad(const CaMaterial& made) override {
    OC_TRY(makePrivateDir(dir_));
    OC_ASSIGN_OR_RETURN(FileLock lock, FileLock::acquire(dir_ + "/.lock"));
    OC_ASSIGN_OR_RETURN(auto have, load());
    if (have) return std::move(*have);
    OC_TRY(writeFileAtomic(dir_ + "/ca.key", made.key_pem, 0600));
    OC_TRY(writeFileAtomic(dir_ + "/trust_domain", made.trust_domain + "\n", 0644));
    OC_TRY(writeFileAtomic(certPath(), made.cert_pem, 0644));
    return made;
  }

  std::string location() const override { return dir_; }

 private:
  std::string certPath() const { return dir_ + "/ca.crt"; }
  std::string dir_;
};

}  // namespace

std::unique_ptr<CaStore> makeDirCaStore(std::string dir) { return std::make_unique<DirCaStore>(std::move(dir)); }

}  // namespace offcore::mesh::tls
