#include "nexus/claim.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "base/crc32c.h"
#include "base/files.h"
#include "base/strings.h"

namespace offcore::nexus {

namespace {

// A file name for a replica name (address:port/NQN): unsafe bytes become
// '_', and a long or rewritten name gets its crc32c so two never collide.
std::string lockName(const std::string& replica) {
  std::string out;
  bool changed = false;
  for (char c : replica) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-';
    out += ok ? c : '_';
    changed = changed || !ok;
  }
  if (out.size() > 180) out.resize(180);
  if (changed || out.size() != replica.size()) {
    char crc[16];
    std::snprintf(crc, sizeof crc, "-%08x", crc32c(0, replica.data(), replica.size()));
    out += crc;
  }
  return out + ".lock";
}

class DirClaim final : public ReplicaClaim {
 public:
  ~DirClaim() override {
    for (int fd : fds) ::close(fd);  // releases the flock
  }
  // A flock lasts as long as its holder: it is never lost.
  std::string lostReason() const override { return ""; }
  std::vector<int> fds;
};

}  // namespace

Result<std::unique_ptr<ReplicaClaim>> claimReplicasInDir(const std::string& dir,
                                                         const std::vector<std::string>& replicas,
                                                         const ClaimHolder& holder) {
  OC_TRY(makeDirs(dir, 0700));
  auto claim = std::make_unique<DirClaim>();
  for (const auto& r : replicas) {
    std::string path = dir + "/" + lockName(r);
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return errnoError("claim replica " + r + ": open " + path);
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      int err = errno;
      char buf[256] = {0};
      ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
      ::close(fd);
      if (err != EWOULDBLOCK) return errnoError("claim replica " + r, err);
      std::string who = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "another nexus";
      while (!who.empty() && (who.back() == '\n' || who.back() == '\0')) who.pop_back();
      who = printableLine(std::move(who));  // one line, whatever the file holds
      // `claim` releases the replicas taken so far as it goes out of scope.
      return makeError(
          "replica " + r + " is in use by " + who + "; detach it there first (two writers would split the volume)",
          EBUSY);
    }
    // Ours now: say who holds it, for the next one refused.
    std::string text = holder.describe() + "\n";
    if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, text.data(), text.size(), 0) != static_cast<ssize_t>(text.size())) {
      int err = errno;
      ::close(fd);
      return errnoError("claim replica " + r + ": write " + path, err);
    }
    claim->fds.push_back(fd);
  }
  return std::unique_ptr<ReplicaClaim>(std::move(claim));
}

}  // namespace offcore::nexus
