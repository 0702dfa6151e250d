// FuseDisk end to end (root + /dev/fuse: real mounts, loop devices, ext4),
// plus ByteRangeIo and FileBlockDevice, which need neither.
#include "disk/fuse_disk.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "base/files.h"
#include "base/subprocess.h"
#include "disk/byte_range_io.h"
#include "disk/file_block_device.h"
#include "wrapped_device.h"

namespace offcore {
namespace {

constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kDiskSize = 64 * kMiB;
constexpr uint32_t kBlock = 4096;

// A directory unique to this process, removed even when a test fails.
struct TempDir {
  TempDir() {
    static std::atomic<int> n{0};
    path = "/tmp/offcore-disk-test-" + std::to_string(::getpid()) + "-" + std::to_string(n.fetch_add(1));
    (void)removeTree(path);
    EXPECT_TRUE(makeDirs(path).ok());
  }
  ~TempDir() { EXPECT_TRUE(removeTree(path).ok()); }
  std::string path;
};

std::vector<char> randomBytes(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<char> v(n);
  for (auto& c : v) c = static_cast<char>(rng());
  return v;
}

std::string run(const std::vector<std::string>& argv) {
  auto r = runCapture(argv);
  if (!r.ok()) return "cannot run " + joinArgv(argv) + ": " + r.error().message;
  if (r->exit_code != 0) {
    return joinArgv(argv) + " exited " + std::to_string(r->exit_code) + ": " + r->err;
  }
  return "";
}

bool haveTool(const std::string& name) {
  for (const char* dir : {"/usr/sbin/", "/sbin/", "/usr/bin/", "/bin/"}) {
    if (::access((dir + name).c_str(), X_OK) == 0) return true;
  }
  return false;
}

bool mountedAt(const std::string& path) {
  auto info = readFile("/proc/self/mountinfo");
  if (!info.ok()) return false;
  for (const auto& line : splitLines(*info)) {
    if (line.find(" " + path + " ") != std::string::npos) return true;
  }
  return false;
}

using test::WrappedDevice;

class CountingDevice : public WrappedDevice {
 public:
  using WrappedDevice::WrappedDevice;
  Status flush() override {
    ++flushes;
    return inner_->flush();
  }
  Status discard(uint64_t o, uint64_t n) override {
    ++discards;
    return inner_->discard(o, n);
  }
  Status writeZeroes(uint64_t o, uint64_t n) override {
    ++zeroes;
    return inner_->writeZeroes(o, n);
  }
  std::atomic<int> flushes{0}, discards{0}, zeroes{0};
};

// Reads touching [bad_begin, bad_end) fail like a dead sector; writes there
// fail like a full thin pool.
class FailingDevice : public WrappedDevice {
 public:
  FailingDevice(std::shared_ptr<BlockDevice> inner, uint64_t begin, uint64_t end)
      : WrappedDevice(std::move(inner)), begin_(begin), end_(end) {}
  Status read(uint64_t o, void* b, size_t n) override {
    if (o < end_ && o + n > begin_) return makeError("injected media error", kBlockIo);
    return inner_->read(o, b, n);
  }
  Status write(uint64_t o, const void* b, size_t n) override {
    if (o < end_ && o + n > begin_) return makeError("injected pool full", kBlockNoSpace);
    return inner_->write(o, b, n);
  }

 private:
  uint64_t begin_, end_;
};

TEST(FileBlockDeviceTest, RoundTripsAndChecksRanges) {
  TempDir tmp;
  const std::string& dir = tmp.path;
  auto dev = FileBlockDevice::create(dir + "/f.img", 1 * kMiB, kBlock);
  ASSERT_TRUE(dev.ok()) << dev.error().message;
  EXPECT_EQ((*dev)->sizeBytes(), kMiB);
  auto data = randomBytes(2 * kBlock, 1);
  ASSERT_TRUE((*dev)->write(kBlock, data.data(), data.size()).ok());
  std::vector<char> back(data.size());
  ASSERT_TRUE((*dev)->read(kBlock, back.data(), back.size()).ok());
  EXPECT_EQ(back, data);
  EXPECT_EQ((*dev)->read(10, back.data(), kBlock).error().code, kBlockInvalid);
  EXPECT_EQ((*dev)->write(kMiB, data.data(), kBlock).error().code, kBlockOutOfRange);
  ASSERT_TRUE((*dev)->discard(kBlock, kBlock).ok());
  ASSERT_TRUE((*dev)->writeZeroes(2 * kBlock, kBlock).ok());
  ASSERT_TRUE((*dev)->read(kBlock, back.data(), back.size()).ok());
  EXPECT_EQ(back, std::vector<char>(back.size(), 0));
  EXPECT_TRUE((*dev)->flush().ok());
  EXPECT_FALSE(FileBlockDevice::open(dir + "/f.img", 1000).ok());
}

// Unaligned writes and zeroings against a byte model, then many threads doing
// read-modify-write on the same blocks at once: a lost update would show.
TEST(FuseDiskRangeIoTest, UnalignedOpsMatchAByteModelUnderConcurrency) {
  TempDir tmp;
  const std::string& dir = tmp.path;
  auto dev = FileBlockDevice::create(dir + "/f.img", 1 * kMiB, 512);
  ASSERT_TRUE(dev.ok()) << dev.error().message;
  ByteRangeIo io(*dev);
  std::vector<char> model(kMiB, 0);
  std::mt19937 rng(7);
  for (int i = 0; i < 300; ++i) {
    uint64_t off = rng() % (kMiB - 1);
    uint64_t len = 1 + rng() % std::min<uint64_t>(kMiB - off, 3000);
    if (i % 5 == 4) {
      ASSERT_TRUE((i % 2 ? io.discard(off, len) : io.writeZeroes(off, len)).ok());
      std::memset(model.data() + off, 0, len);
    } else {
      auto data = randomBytes(len, i);
      ASSERT_TRUE(io.write(off, data.data(), len).ok());
      std::memcpy(model.data() + off, data.data(), len);
    }
  }
  std::vector<char> back(kMiB);
  ASSERT_TRUE(io.read(0, back.data(), back.size()).ok());
  ASSERT_TRUE(back == model);
  ASSERT_TRUE(io.read(3, back.data(), 1000).ok());
  EXPECT_EQ(std::memcmp(back.data(), model.data() + 3, 1000), 0);

  // Thread t owns bytes b with b % 8 == t in the first 64 KiB: every write
  // shares its blocks with every other thread's, plus aligned writes of the
  // second 64 KiB race on the same lock stripes.
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&io, t] {
      for (int k = 0; k < 400; ++k) {
        uint64_t off = (static_cast<uint64_t>(k) * 8 + t) % (64 * 1024);
        char c = static_cast<char>('a' + t);
        (void)io.write(off, &c, 1);
        std::vector<char> block(512, c);
        (void)io.write(64 * 1024 + (k % 128) * 512, block.data(), block.size());
      }
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_TRUE(io.read(0, back.data(), 64 * 1024).ok());
  for (uint64_t b = 0; b < 8 * 400; ++b) {
    ASSERT_EQ(back[b], static_cast<char>('a' + b % 8)) << "lost update at byte " << b;
  }
  EXPECT_GT(io.readModifyWrites(), 3200u);
}

class FuseDiskTest : public testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0 || ::access("/dev/fuse", R_OK | W_OK) != 0) {
      GTEST_SKIP() << "needs root and /dev/fuse";
    }
    tmp_ = std::make_unique<TempDir>();
    dir_ = tmp_->path;
    disk_path_ = dir_ + "/disk";
    auto dev = FileBlockDevice::create(dir_ + "/backing.img", kDiskSize, kBlock);
    ASSERT_TRUE(dev.ok()) << dev.error().message;
    backing_ = *dev;
  }
  // Reverse order of use: filesystems, loop devices, the FUSE mount, files.
  void TearDown() override {
    for (const auto& m : fs_mounts_) {
      if (::umount2(m.c_str(), 0) != 0) (void)::umount2(m.c_str(), MNT_DETACH);
    }
    for (const auto& l : loops_) (void)runCapture({"losetup", "-d", l});
    disk_.reset();
    if (!dir_.empty() && mountedAt(disk_path_)) {
      (void)::umount2(disk_path_.c_str(), MNT_DETACH);
    }
    tmp_.reset();
  }
  void mountDisk(std::shared_ptr<BlockDevice> dev, FuseDiskOptions o = {}) {
    auto d = FuseDisk::mount(disk_path_, std::move(dev), o);
    ASSERT_TRUE(d.ok()) << d.error().message;
    disk_ = std::move(*d);
  }
  std::string attachLoop() {
    auto r = runCapture({"losetup", "--find", "--show", disk_path_});
    if (!r.ok() || r->exit_code != 0) return "";
    loops_.push_back(trim(r->out));
    return loops_.back();
  }
  std::string detachLoop(const std::string& dev) {
    std::erase(loops_, dev);
    return run({"losetup", "-d", dev});
  }
  std::vector<char> backingBytes(uint64_t off, size_t len) {
    std::vector<char> v(len);
    EXPECT_TRUE(backing_->read(off, v.data(), len).ok());
    return v;
  }

  std::unique_ptr<TempDir> tmp_;
  std::string dir_, disk_path_;
  std::shared_ptr<FileBlockDevice> backing_;
  std::unique_ptr<FuseDisk> disk_;
  std::vector<std::string> loops_, fs_mounts_;
};

TEST_F(FuseDiskTest, ServesTheDeviceByteExact) {
  mountDisk(backing_);
  struct stat st {};
  ASSERT_EQ(::stat(disk_path_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), kDiskSize);
  EXPECT_TRUE(mountedAt(disk_path_));

  int fd = ::open(disk_path_.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  auto big = randomBytes(4 * kMiB, 11);
  ASSERT_EQ(::pwrite(fd, big.data(), big.size(), 3 * kMiB), static_cast<ssize_t>(big.size()));
  EXPECT_EQ(backingBytes(3 * kMiB, big.size()), big);

  // dd writes through the mount like any tool would (notrunc: size is fixed).
  ASSERT_TRUE(writeFileAtomic(dir_ + "/pattern", std::string(big.data(), kMiB)).ok());
  EXPECT_EQ(run({"dd", "if=" + dir_ + "/pattern", "of=" + disk_path_, "bs=64k", "seek=320", "conv=notrunc,fsync",
                 "status=none"}),
            "");
  EXPECT_EQ(backingBytes(20 * kMiB, kMiB), std::vector<char>(big.begin(), big.begin() + kMiB));

  // Small unaligned writes from several threads, each in its own MiB.
  std::vector<std::vector<char>> models(4, std::vector<char>(kMiB, 0));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(100 + t);
      uint64_t base = (40 + t) * kMiB;
      for (int k = 0; k < 150; ++k) {
        uint64_t off = k == 0 ? 10 : rng() % (kMiB - 5000);
        size_t len = k == 0 ? 100 : 1 + rng() % 5000;
        auto data = randomBytes(len, 1000 * t + k);
        if (::pwrite(fd, data.data(), len, base + off) != static_cast<ssize_t>(len)) return;
        std::memcpy(models[t].data() + off, data.data(), len);
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) {
    ASSERT_TRUE(backingBytes((40 + t) * kMiB, kMiB) == models[t]) << "thread " << t;
    std::vector<char> via(kMiB);
    ASSERT_EQ(::pread(fd, via.data(), kMiB, (40 + t) * kMiB), static_cast<ssize_t>(kMiB));
    ASSERT_TRUE(via == models[t]) << "thread " << t;
  }
  EXPECT_GT(disk_->stats().read_modify_writes, 0u);

  // Fixed size: no truncate, no writing past the end; a read there is EOF.
  errno = 0;
  EXPECT_NE(::ftruncate(fd, 0), 0);
  EXPECT_EQ(errno, EPERM);
  char c = 'x';
  errno = 0;
  EXPECT_EQ(::pwrite(fd, &c, 1, kDiskSize), -1);
  EXPECT_EQ(errno, ENOSPC);
  EXPECT_EQ(::pread(fd, &c, 1, kDiskSize), 0);
  ::close(fd);
  EXPECT_EQ(disk_->stats().errors, 0u);
  EXPECT_GE(disk_->stats().bytes_written, 5 * kMiB);
}

TEST_F(FuseDiskTest, Ext4OnALoopDeviceSurvivesRemount) {
  for (const char* tool : {"losetup", "mkfs.ext4"}) {
    if (!haveTool(tool)) GTEST_SKIP() << tool << " missing";
  }
  auto counting = std::make_shared<CountingDevice>(backing_);
  mountDisk(counting);
  std::string loop = attachLoop();
  ASSERT_FALSE(loop.empty()) << "losetup --find --show " << disk_path_ << " failed";
  ASSERT_EQ(run({"mkfs.ext4", "-q", loop}), "");
  EXPECT_GT(counting->discards.load(), 0) << "mkfs's BLKDISCARD should reach discard()";

  std::string mnt = dir_ + "/mnt";
  ASSERT_TRUE(makeDirs(mnt).ok());
  ASSERT_EQ(::mount(loop.c_str(), mnt.c_str(), "ext4", 0, nullptr), 0) << std::strerror(errno);
  fs_mounts_.push_back(mnt);
  auto payload = randomBytes(3 * kMiB + 123, 5);
  ASSERT_TRUE(writeFileAtomic(mnt + "/big.bin", std::string(payload.begin(), payload.end())).ok());
  ASSERT_TRUE(writeFileAtomic(mnt + "/small.txt", "hello disk\n").ok());
  ASSERT_EQ(run({"sync"}), "");
  EXPECT_GT(counting->flushes.load(), 0);
  ASSERT_EQ(::umount2(mnt.c_str(), 0), 0) << std::strerror(errno);
  fs_mounts_.clear();
  ASSERT_EQ(detachLoop(loop), "");

  loop = attachLoop();
  ASSERT_FALSE(loop.empty());
  ASSERT_EQ(::mount(loop.c_str(), mnt.c_str(), "ext4", MS_RDONLY, nullptr), 0) << std::strerror(errno);
  fs_mounts_.push_back(mnt);
  auto big = readFile(mnt + "/big.bin");
  ASSERT_TRUE(big.ok());
  EXPECT_TRUE(*big == std::string(payload.begin(), payload.end()));
  EXPECT_EQ(readFile(mnt + "/small.txt").valueOr(""), "hello disk\n");
  ASSERT_EQ(::umount2(mnt.c_str(), 0), 0);
  fs_mounts_.clear();
  ASSERT_EQ(detachLoop(loop), "");
  // The loop device lets go asynchronously: unmount must ride that out.
  EXPECT_TRUE(disk_->unmount().ok());
  EXPECT_FALSE(mountedAt(disk_path_));
  EXPECT_EQ(run({"e2fsck", "-fn", dir_ + "/backing.img"}), "");
}

TEST_F(FuseDiskTest, FsyncFlushesAndPunchHoleDiscards) {
  auto counting = std::make_shared<CountingDevice>(backing_);
  mountDisk(counting);
  int fd = ::open(disk_path_.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  auto data = randomBytes(kMiB, 3);
  ASSERT_EQ(::pwrite(fd, data.data(), kMiB, 0), static_cast<ssize_t>(kMiB));
  EXPECT_EQ(counting->flushes.load(), 0);
  ASSERT_EQ(::fsync(fd), 0);
  EXPECT_EQ(counting->flushes.load(), 1);
  ASSERT_EQ(::fdatasync(fd), 0);
  EXPECT_EQ(counting->flushes.load(), 2);
  ::close(fd);
  EXPECT_EQ(counting->flushes.load(), 2) << "close is not a flush";

  EXPECT_EQ(run({"fallocate", "--punch-hole", "--offset", "65536", "--length", "131072", disk_path_}), "");
  EXPECT_EQ(counting->discards.load(), 1);
  // Two whole blocks go to writeZeroes, the unaligned tail is merged.
  EXPECT_EQ(run({"fallocate", "--zero-range", "--keep-size", "--offset", "299008", "--length", "12000", disk_path_}),
            "");
  EXPECT_EQ(counting->zeroes.load(), 1);
  std::memset(data.data() + 65536, 0, 131072);
  std::memset(data.data() + 299008, 0, 12000);
  EXPECT_TRUE(backingBytes(0, kMiB) == data);
  fd = ::open(disk_path_.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  std::vector<char> via(kMiB);
  ASSERT_EQ(::pread(fd, via.data(), kMiB, 0), static_cast<ssize_t>(kMiB));
  EXPECT_TRUE(via == data) << "reads after a punch-hole must be zeroes";
  errno = 0;
  EXPECT_NE(::fallocate(fd, 0, 0, 4096), 0);
  EXPECT_EQ(errno, EOPNOTSUPP);
  ::close(fd);

  // blkdiscard on a loop device over the file arrives as a punch-hole.
  if (haveTool("losetup") && haveTool("blkdiscard")) {
    std::string loop = attachLoop();
    ASSERT_FALSE(loop.empty());
    int before = counting->discards.load();
    EXPECT_EQ(run({"blkdiscard", "-o", "0", "-l", "1048576", loop}), "");
    EXPECT_GT(counting->discards.load(), before);
    EXPECT_TRUE(backingBytes(0, kMiB) == std::vector<char>(kMiB, 0));
    EXPECT_EQ(detachLoop(loop), "");
  }
}

TEST_F(FuseDiskTest, DeviceErrorsBecomeEioNotData) {
  auto good = randomBytes(4 * kMiB, 9);
  ASSERT_TRUE(backing_->write(0, good.data(), good.size()).ok());
  const uint64_t bad = 2 * kMiB;  // reads of [2 MiB, 2 MiB + 64 KiB) fail
  for (bool direct : {false, true}) {
    SCOPED_TRACE(direct ? "direct_io" : "page cache");
    FuseDiskOptions o;
    o.direct_io = direct;
    mountDisk(std::make_shared<FailingDevice>(backing_, bad, bad + 65536), o);
    int fd = ::open(disk_path_.c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    std::vector<char> buf(8192);
    errno = 0;
    EXPECT_EQ(::pread(fd, buf.data(), 4096, bad + 4096), -1);
    EXPECT_EQ(errno, EIO);
    // Spanning good and bad: a short read of correct bytes, or EIO.
    ssize_t n = ::pread(fd, buf.data(), 8192, bad - 4096);
    if (n < 0) {
      EXPECT_EQ(errno, EIO);
    } else {
      EXPECT_LT(n, 8192);
      EXPECT_EQ(std::memcmp(buf.data(), good.data() + bad - 4096, n), 0);
    }
    ASSERT_EQ(::pread(fd, buf.data(), 4096, kMiB), 4096);
    EXPECT_EQ(std::memcmp(buf.data(), good.data() + kMiB, 4096), 0);
    errno = 0;
    EXPECT_EQ(::pwrite(fd, buf.data(), 4096, bad), -1);
    EXPECT_EQ(errno, ENOSPC);
    ::close(fd);
    EXPECT_GE(disk_->stats().errors, 2u);
    ASSERT_TRUE(disk_->unmount().ok());
  }
}

TEST_F(FuseDiskTest, UnmountLeavesNoMountAndBusyGoesLazy) {
  mountDisk(backing_);
  ASSERT_TRUE(mountedAt(disk_path_));
  EXPECT_TRUE(disk_->unmount().ok());
  EXPECT_FALSE(disk_->mounted());
  EXPECT_FALSE(mountedAt(disk_path_));
  EXPECT_TRUE(disk_->unmount().ok()) << "idempotent";
  struct stat st {};
  ASSERT_EQ(::stat(disk_path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 0) << "the placeholder file is back";

  // Remount the same file, keep it open, and unmount: busy, then lazy + abort.
  FuseDiskOptions o;
  o.busy_timeout = std::chrono::milliseconds(200);
  mountDisk(backing_, o);
  int fd = ::open(disk_path_.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  Status s = disk_->unmount();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, EBUSY);
  EXPECT_FALSE(mountedAt(disk_path_));
  char c;
  EXPECT_EQ(::pread(fd, &c, 1, 50 * kMiB), -1) << "an aborted connection must not return data";
  ::close(fd);
}

// A daemon killed with its disk mounted leaves a dead mount (ENOTCONN);
// the next mount on that file replaces it.
TEST_F(FuseDiskTest, StaleMountOfADeadDaemonIsReplaced) {
  int ready[2];
  ASSERT_EQ(::pipe2(ready, O_CLOEXEC), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto d = FuseDisk::mount(disk_path_, backing_, {});
    if (d.ok()) (void)!::write(ready[1], "k", 1);
    for (;;) ::pause();
  }
  // Killed here, or on the way out if an assertion fails first.
  struct Reaper {
    pid_t pid;
    void kill() {
      if (pid > 0) (void)::kill(pid, SIGKILL), (void)waitExit(pid);
      pid = -1;
    }
    ~Reaper() { kill(); }
  } daemon{child};
  ::close(ready[1]);
  char c = 0;
  EXPECT_EQ(::read(ready[0], &c, 1), 1);
  ::close(ready[0]);
  daemon.kill();
  ASSERT_TRUE(mountedAt(disk_path_));
  mountDisk(backing_);
  auto data = randomBytes(4096, 4);
  ASSERT_TRUE(backing_->write(0, data.data(), data.size()).ok());
  auto via = readFile(disk_path_);  // reads the whole disk through the new mount
  ASSERT_TRUE(via.ok()) << via.error().message;
  EXPECT_EQ(via->size(), kDiskSize);
  EXPECT_EQ(via->substr(0, 4096), std::string(data.begin(), data.end()));
  EXPECT_TRUE(disk_->unmount().ok());
  EXPECT_FALSE(mountedAt(disk_path_)) << "neither the new nor the stale mount is left";
}

TEST_F(FuseDiskTest, ReadOnlyRefusesWrites) {
  FuseDiskOptions o;
  o.read_only = true;
  mountDisk(backing_, o);
  errno = 0;
  EXPECT_EQ(::open(disk_path_.c_str(), O_RDWR | O_CLOEXEC), -1);
  EXPECT_EQ(errno, EROFS);
  int fd = ::open(disk_path_.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  char c = 1;
  EXPECT_EQ(::pread(fd, &c, 1, 0), 1);
  EXPECT_EQ(c, 0);
  ::close(fd);
}

}  // namespace
}  // namespace offcore
