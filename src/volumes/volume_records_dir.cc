// The directory VolumeRecords: <dir>/NAME.json (0600, written atomically)
// and a flock on <dir>/.lock for changes.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>

#include "base/files.h"
#include "volumes/volume_records.h"

namespace offcore::volumes {

namespace {

class DirLock final : public VolumesLock {
 public:
  explicit DirLock(int fd) : fd_(fd) {}
  ~DirLock() override { ::close(fd_); }

 private:
  int fd_;
};

class DirVolumeRecords final : public VolumeRecords {
 public:
  explicit DirVolumeRecords(std::string dir) : dir_(std::move(dir)) {}

  Result<std::optional<std::string>> get(const std::string& name) override {
    std::string path = pathOf(name);
    if (!pathExists(path)) return std::optional<std::string>{};
    OC_ASSIGN_OR_RETURN(auto text, readFile(path));
    return std::optional<std::string>(std::move(text));
  }

  Result<std::vector<std::string>> names() override {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir_, ec)) {
      if (e.path().extension() == ".json") out.push_back(e.path().stem().string());
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  Status put(const std::string& name, const std::string& text) override {
    OC_TRY(makePrivateDir(dir_));
    return writeFileAtomic(pathOf(name), text, 0600);
  }

  Status remove(const std::string& name) override {
    if (std::remove(pathOf(name).c_str()) != 0 && errno != ENOENT) return errnoError("remove " + pathOf(name));
    return okStatus();
  }

  // A flock: the kernel drops it with its holder, so waiting is safe.
  Result<std::unique_ptr<VolumesLock>> lock(const std::string&, int) override {
    OC_TRY(makePrivateDir(dir_));
    int fd = ::open((dir_ + "/.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return errnoError("open " + dir_ + "/.lock");
    if (::flock(fd, LOCK_EX) != 0) {
      int err = errno;
      ::close(fd);
      return errnoError("lock " + dir_, err);
    }
    return std::unique_ptr<VolumesLock>(std::make_unique<DirLock>(fd));
  }

  std::string location() const override { return dir_; }

 private:
  std::string pathOf(const std::string& name) const { return dir_ + "/" + name + ".json"; }
  std::string dir_;
};

}  // namespace

std::unique_ptr<VolumeRecords> makeDirVolumeRecords(std::string dir) {
  return std::make_unique<DirVolumeRecords>(std::move(dir));
}

}  // namespace offcore::volumes
