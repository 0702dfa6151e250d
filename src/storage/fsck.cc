// VolumeStore::fsck: loads a closed store the way open() does, but only
// reads, and reports every problem instead of stopping at the first.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "base/files.h"
#include "storage/journal.h"
#include "storage/volume_store.h"

namespace offcore {

Result<FsckReport> VolumeStore::fsck(const std::string& dir) {
  int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return errnoError("fsck: cannot open store directory " + dir);
  // open() holds LOCK_EX for the store's lifetime; a store in use is in flux.
  bool busy = ::flock(dir_fd, LOCK_SH | LOCK_NB) != 0;
  ::close(dir_fd);
  if (busy) return makeError("fsck: store " + dir + " is open; close it first", EBUSY);

  FsckReport report;
  auto problem = [&](const std::string& line) {
    report.clean = false;
    report.problems.push_back(line);
  };

  MetaState state;
  bool structure_ok = true;
  const std::string ckpt_path = dir + "/meta.ckpt";
  if (pathExists(ckpt_path)) {
    OC_ASSIGN_OR_RETURN(std::string bytes, readFile(ckpt_path));
    auto decoded = decodeCheckpoint(bytes);
    if (decoded.ok()) {
      state = std::move(*decoded);
    } else {
      problem(decoded.error().message);
      structure_ok = false;
    }
  }

  std::string journal;
  if (pathExists(dir + "/meta.journal")) {
    OC_ASSIGN_OR_RETURN(journal, readFile(dir + "/meta.journal"));
  }
  auto scan = scanJournal(journal);
  if (!scan.ok()) {
    problem(scan.error().message);
    structure_ok = false;
  } else {
    report.journal_records = scan->entries.size();
    report.torn_tail = scan->torn_tail;  // a crash artifact that open() drops, not a problem
    if (structure_ok) {
      auto replayed = replayJournal(state, *scan);
      if (!replayed.ok()) {
        problem(replayed.error().message);
        structure_ok = false;
      }
    }
  }
  if (!structure_ok) return report;

  uint64_t data_bytes = 0;
  struct stat st;
  if (::stat((dir + "/data.img").c_str(), &st) == 0) {
    data_bytes = static_cast<uint64_t>(st.st_size);
  } else if (errno != ENOENT) {
    return errnoError("fsck: stat " + dir + "/data.img");
  }
  for (auto& line : checkInvariants(state, data_bytes / kClusterSize)) problem(line);
  report.volumes = state.volumes.size();
  report.clusters_in_use = state.owned;
  return report;
}

}  // namespace offcore
