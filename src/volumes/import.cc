// Records a cluster directory held before its config named an etcd store
// (open.h, importDirState): copied into etcd once, then the folders renamed
// <folder>.imported, so a record removed in etcd later never comes back from
// the directory. A record both hold with other contents is an error naming
// it; nothing is renamed until every record of the folder is in etcd.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>

#include "base/files.h"
#include "base/log.h"
#include "volumes/open.h"

namespace offcore::volumes {

namespace {

bool isDir(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_directory(path, ec);
}

// DIR -> DIR.imported (DIR.imported.2, ... when taken).
Status setAside(const std::string& dir) {
  std::string to = dir + ".imported";
  for (int n = 2; pathExists(to); ++n) to = dir + ".imported." + std::to_string(n);
  if (::rename(dir.c_str(), to.c_str()) != 0) return errnoError("rename " + dir + " to " + to);
  return okStatus();
}

// Copies one record; EEXIST with the same text is done already.
Status copyRecord(RecordStore& from, RecordStore& to, const std::string& name, const RecordKind& kind) {
  OC_ASSIGN_OR_RETURN(auto text, from.get(name));
  if (!text) return okStatus();  // removed meanwhile
  auto made = to.create(name, *text);
  if (made.ok() || made.error().code != EEXIST) return made;
  OC_ASSIGN_OR_RETURN(auto have, to.get(name));
  if (have && *have == *text) return okStatus();
  return makeError(std::string(kind.noun) + " " + name + " is in both " + from.location() + " and " + to.location() +
                       " with other contents: keep one (remove the other), then retry",
                   EEXIST);
}

// The dir's nexus claims, each flocked without waiting: a disk attached
// while the state was in the directory still writes its journal there.
Result<std::vector<int>> holdDirClaims(const std::string& claims) {
  std::vector<int> held;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(claims, ec)) {
    int fd = ::open(e.path().c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) continue;
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      ::close(fd);
      for (int h : held) ::close(h);
      return makeError("a disk attached while the cluster state was in the directory still holds replica claim " +
                           e.path().string() + ": detach it, then retry",
                       EBUSY);
    }
    held.push_back(fd);
  }
  return held;
}

}  // namespace

Status importDirRecords(const Config& config, RecordStore& to, const RecordKind& kind, NexusState* nexus_to) {
  const std::string dir = config.cluster_dir + "/" + kind.folder;
  const std::string nexus_dir = config.cluster_dir + "/nexus";
  const bool journals = nexus_to != nullptr && isDir(nexus_dir);
  if (!isDir(dir) && !journals) return okStatus();
  auto from = makeDirRecordStore(dir, kind);
  OC_ASSIGN_OR_RETURN(auto lock, from->lock("offcore import"));
  if (!isDir(dir) && !journals) return okStatus();  // another process imported it while we waited
  std::vector<int> claims;
  if (journals) {
    OC_ASSIGN_OR_RETURN(claims, holdDirClaims(nexus_dir + "/claims"));
  }
  struct Closer {
    std::vector<int>& fds;
    ~Closer() {
      for (int fd : fds) ::close(fd);
    }
  } closer{claims};
  OC_ASSIGN_OR_RETURN(auto names, from->names());
  auto dir_nexus = journals ? makeDirNexusState(nexus_dir) : nullptr;
  for (const auto& name : names) {
    // A volume's journal before its record: once the record is in etcd, an
    // attach there reads the journal, which must say what the replicas missed.
    if (journals) {
      OC_ASSIGN_OR_RETURN(auto have, to.get(name));
      if (!have && pathExists(dir_nexus->journalRef(name))) {
        OC_ASSIGN_OR_RETURN(auto old_journal, dir_nexus->journal(name, nullptr));
        OC_ASSIGN_OR_RETURN(auto rec, old_journal->load());
        if (rec) {
          OC_ASSIGN_OR_RETURN(auto new_journal, nexus_to->journal(name, nullptr));
          OC_TRY(new_journal->save(*rec));
        }
      }
    }
    OC_TRY(copyRecord(*from, to, name, kind));
  }
  if (isDir(dir)) OC_TRY(setAside(dir));
  if (journals) OC_TRY(setAside(nexus_dir));
  spdlog::warn("imported {} {} from {} into {} ({} renamed: etcd holds them now)", names.size(), kind.plural, dir,
               to.location(), journals ? dir + " and " + nexus_dir : dir);
  return okStatus();
}

}  // namespace offcore::volumes
