// The directory RecordStore: <dir>/NAME.json (0600, written atomically)
// and a flock on <dir>/.lock for changes. A create writes a file of its own
// and links it in: link(2) never replaces, so one of two creators wins.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <thread>

#include "base/files.h"
#include "base/log.h"
#include "base/strings.h"
#include "volumes/record_store.h"

namespace offcore::volumes {

namespace {

class DirLock final : public RecordLock {
 public:
  explicit DirLock(int fd) : fd_(fd) {}
  ~DirLock() override { ::close(fd_); }

 private:
  int fd_;
};

class DirRecordStore final : public RecordStore {
 public:
  DirRecordStore(std::string dir, const RecordKind& kind) : dir_(std::move(dir)), kind_(kind) {}

  Result<std::optional<std::string>> get(const std::string& name) override {
    OC_TRY(checkRecordName(name, kind_));
    auto text = readFile(pathOf(name));
    if (!text.ok()) {
      if (text.error().code == ENOENT) return std::optional<std::string>{};  // absent, or removed meanwhile
      return text.error();                                                   // EACCES, EIO...: not "absent"
    }
    return std::optional<std::string>(std::move(*text));
  }

  Result<std::vector<std::string>> names() override {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir_, ec)) {
      if (e.path().extension() == ".json") out.push_back(e.path().stem().string());
    }
    if (ec && ec != std::errc::no_such_file_or_directory) return makeError("cannot list " + dir_ + ": " + ec.message());
    std::sort(out.begin(), out.end());
    return out;
  }

  Status put(const std::string& name, const std::string& text) override {
    OC_TRY(checkRecordName(name, kind_));
    OC_TRY(makePrivateDir(dir_));
    return writeFileAtomic(pathOf(name), text, 0600);
  }

  Status create(const std::string& name, const std::string& text) override {
    OC_TRY(checkRecordName(name, kind_));
    OC_TRY(makePrivateDir(dir_));
    static std::atomic<unsigned> seq{0};
    const std::string mine = dir_ + "/." + name + ".new." + std::to_string(::getpid()) + "." + std::to_string(++seq);
    OC_TRY(writeFileAtomic(mine, text, 0600));
    int rc = ::link(mine.c_str(), pathOf(name).c_str());
    int err = errno;
    std::remove(mine.c_str());
    if (rc == 0) return okStatus();
    if (err == EEXIST) return Error{EEXIST, std::string(kind_.noun) + " " + name + " exists in " + dir_};
    return errnoError("link " + pathOf(name), err);
  }

  Status remove(const std::string& name) override {
    OC_TRY(checkRecordName(name, kind_));
    if (std::remove(pathOf(name).c_str()) != 0 && errno != ENOENT) return errnoError("remove " + pathOf(name));
    return okStatus();
  }

  // A flock: the kernel drops it with its holder. Taken without blocking,
  // retried until wait_s, so a stuck holder gets a refusal naming it.
  Result<std::unique_ptr<RecordLock>> lock(const std::string& who, int wait_s) override {
    OC_TRY(makePrivateDir(dir_));
    const std::string path = dir_ + "/.lock";
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return errnoError("open " + path);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(wait_s);
    while (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      int err = errno;
      if (err != EWOULDBLOCK && err != EINTR) {
        ::close(fd);
        return errnoError("lock " + path, err);
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        std::string holder = printableLine(trim(readFile(path).valueOr("")));
        ::close(fd);
        return makeError(std::string(kind_.plural) + " in " + dir_ + " are being changed by " +
                             (holder.empty() ? "another command" : holder) + " for " + std::to_string(wait_s) +
                             " s now; try again once it is done",
                         EBUSY);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    // Who holds it, for the refusal another command gets meanwhile.
    std::string line = printableLine(who) + " (pid " + std::to_string(::getpid()) + ")\n";
    if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, line.data(), line.size(), 0) < 0) {
      spdlog::debug("{}: holder not written: {}", path, std::strerror(errno));
    }
    return std::unique_ptr<RecordLock>(std::make_unique<DirLock>(fd));
  }

  std::string location() const override { return dir_; }

 private:
  std::string pathOf(const std::string& name) const { return dir_ + "/" + name + ".json"; }
  std::string dir_;
  RecordKind kind_;
};

}  // namespace

std::unique_ptr<RecordStore> makeDirRecordStore(std::string dir, const RecordKind& kind) {
  return std::make_unique<DirRecordStore>(std::move(dir), kind);
}

Status checkRecordName(const std::string& name, const RecordKind& kind) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos ||
      name.find('\0') != std::string::npos) {
    return makeError("bad " + std::string(kind.noun) + " name '" + printableLine(name) + "'", EINVAL);
  }
  return okStatus();
}

}  // namespace offcore::volumes
