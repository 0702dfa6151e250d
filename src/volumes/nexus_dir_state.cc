// The directory NexusState: <dir>/ID.json journals (nexus::makeFileJournal)
// and a flock per replica under <dir>/claims (nexus::claimReplicasInDir).
#include <cerrno>
#include <cstdio>

#include "base/files.h"
#include "volumes/nexus_state.h"

namespace offcore::volumes {

namespace {

class DirNexusState final : public NexusState {
 public:
  explicit DirNexusState(std::string dir) : dir_(std::move(dir)) {}

  Result<std::unique_ptr<nexus::ReplicaClaim>> claim(const std::vector<std::string>& replicas,
                                                     const nexus::ClaimHolder& holder) override {
    return nexus::claimReplicasInDir(dir_ + "/claims", replicas, holder);
  }

  // A flock holds as long as its holder: nothing to check on a save.
  Result<std::shared_ptr<nexus::NexusJournal>> journal(const std::string& id, const nexus::ReplicaClaim*) override {
    OC_TRY(makeDirs(dir_, 0700));
    return nexus::makeFileJournal(journalRef(id));
  }

  Status removeJournal(const std::string& id) override {
    if (std::remove(journalRef(id).c_str()) != 0 && errno != ENOENT) return errnoError("remove " + journalRef(id));
    return okStatus();
  }

  std::string journalRef(const std::string& id) const override { return dir_ + "/" + id + ".json"; }
  std::string location() const override { return dir_; }

 private:
  std::string dir_;
};

}  // namespace

std::unique_ptr<NexusState> makeDirNexusState(std::string dir) {
  return std::make_unique<DirNexusState>(std::move(dir));
}

Result<JournalRef> parseJournalRef(const std::string& ref) {
  if (ref.rfind("etcd:", 0) == 0) {
    std::string id = ref.substr(5);
    if (id.empty() || id.find('/') != std::string::npos) return makeError("bad journal '" + ref + "' (etcd:ID)");
    return JournalRef{true, "", id};
  }
  size_t slash = ref.rfind('/');
  std::string file = slash == std::string::npos ? ref : ref.substr(slash + 1);
  if (file.size() <= 5 || file.substr(file.size() - 5) != ".json") {
    return makeError("bad journal '" + ref + "' (DIR/ID.json, or etcd:ID for the cluster's etcd)");
  }
  return JournalRef{false, slash == std::string::npos ? "." : ref.substr(0, slash), file.substr(0, file.size() - 5)};
}

}  // namespace offcore::volumes
