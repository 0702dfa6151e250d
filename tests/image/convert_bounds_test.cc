// Conversion hardening: the diff-ID pass is bounded like the unpack, a sparse
// layer within the bounds builds a small EROFS image (mkfs.erofs 1.5 writes
// holes out as zeros unless files are chunk-based), and scratch directories
// go away on SIGTERM/SIGINT or, when their converter died, on the next run.
// Runs as root, like all offcore unit tests; the EROFS tests need mkfs.erofs.
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <thread>

#include "base/subprocess.h"
#include "image/converter.h"
#include "image/layer_digest.h"
#include "image/scratch_dir.h"
#include "tar_test_util.h"

namespace offcore {
namespace {

constexpr uint64_t kMiB = 1ull << 20;

uint64_t allocatedBytes(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_blocks) * 512 : 0;
}

std::vector<std::string> listDir(const std::string& dir) {
  std::vector<std::string> out;
  auto r = runCapture({"ls", "-A", dir});
  if (r.ok()) out = splitLines(r->out);
  return out;
}

class ConvertBoundsTest : public ScratchDirTest {};

TEST_F(ConvertBoundsTest, DiffIdPassStopsAGzipBombAtTheLimit) {
  // 200 MiB of zeros gzipped: not even a tar, but the diff ID pass would
  // hash all of it.
  RawCompressor c(TarFilter::kGzip);
  std::string blob = c.zeros(200 * kMiB).finish();
  ASSERT_LT(blob.size(), 300000u);
  ASSERT_OK(writeFileAtomic(path("bomb.blob"), blob));
  auto r = oci::uncompressedDigest(path("bomb.blob"), LayerBounds{}, "sha256:bomb");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, EFBIG);
  for (const char* part : {"sha256:bomb", "decompressed tar stream", "64.0 MiB", "--max-expansion-ratio"})
    EXPECT_NE(r.error().message.find(part), std::string::npos) << part << " in " << r.error().message;
  // Within the bounds (here: none) it is hashed whole.
  auto whole = oci::uncompressedDigest(path("bomb.blob"), LayerBounds{.max_ratio = 0});
  ASSERT_OK(whole);
  EXPECT_EQ(whole->bytes, 200 * kMiB);
}

// Runs mkfs.erofs tests only where it is installed.
bool haveMkfsErofs() {
  auto r = runCapture({"sh", "-c", "command -v mkfs.erofs"});
  return r.ok() && r->exit_code == 0;
}

// Mounts an EROFS image read-only (util-linux sets up the loop device) and
// runs check on the mount point; false when this kernel cannot mount it.
bool withMountedImage(const std::string& image, const std::string& mnt, const std::function<void()>& check) {
  if (!makeDirs(mnt).ok()) return false;
  auto m = runCapture({"mount", "-t", "erofs", "-o", "loop,ro", image, mnt});
  if (!m.ok() || m->exit_code != 0) return false;
  check();
  (void)runCapture({"umount", mnt});
  return true;
}

TEST_F(ConvertBoundsTest, SparseLayerWithinTheBoundsBuildsASmallImage) {
  if (!haveMkfsErofs()) GTEST_SKIP() << "mkfs.erofs is not installed";
  // 96 MiB apparent with three 4 KiB data regions, plus a dense file of
  // zeros (how Go's archive/tar stores sparse files): both must stay holes.
  const uint64_t size = 96 * kMiB;
  std::string content(size, '\0');
  for (uint64_t off : {uint64_t{0}, 64 * kMiB, size - 4096}) content.replace(off, 4096, 4096, 'd');
  TarBuilder b(TarFilter::kGzip);
  b.file("etc/motd", "hello\n");
  b.add({.path = "var/log/lastlog", .content = content, .sparse = {{0, 4096}, {64 * kMiB, 4096}, {size - 4096, 4096}}});
  b.file("dense-zeros", std::string(48 * kMiB, '\0'));
  ASSERT_OK(writeFileAtomic(path("layer.blob"), b.finish()));
  // A 128 MiB file from a tiny blob needs the ratio off (the cap still holds).
  LayerBounds bounds{.max_ratio = 0};
  auto image = buildLayerImage(path("layer.blob"), path("l"), bounds, "sha256:sparse");
  ASSERT_OK(image);
  EXPECT_TRUE(image->chunked);
  EXPECT_FALSE(pathExists(path("l.tree")));  // the unpacked tree is gone
  EXPECT_GE(image->stats.hole_bytes, size + 48 * kMiB - 3 * 4096);
  // The old build wrote 144 MiB of zeros into the image.
  EXPECT_LT(allocatedBytes(image->path), 4 * kMiB) << image->fs_bytes << " bytes";
  EXPECT_LT(image->fs_bytes, 4 * kMiB);
  auto fsck = runCapture({"fsck.erofs", image->path});
  if (fsck.ok() && fsck->exit_code != 127) {
    EXPECT_EQ(fsck->exit_code, 0) << fsck->err;
  }
  bool mounted = withMountedImage(image->path, path("mnt"), [&] {
    int fd = ::open(path("mnt/var/log/lastlog").c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    struct stat st {};
    ::fstat(fd, &st);
    EXPECT_EQ(static_cast<uint64_t>(st.st_size), size);
    std::string got(4096, '?');
    for (uint64_t off : {uint64_t{0}, 64 * kMiB, size - 4096}) {
      EXPECT_EQ(::pread(fd, got.data(), got.size(), static_cast<off_t>(off)), 4096);
      EXPECT_TRUE(got == std::string(4096, 'd')) << off;
    }
    EXPECT_EQ(::pread(fd, got.data(), got.size(), static_cast<off_t>(32 * kMiB)), 4096);
    EXPECT_TRUE(got == std::string(4096, '\0'));
    ::close(fd);
    EXPECT_EQ(readFile(path("mnt/etc/motd")).valueOr(""), "hello\n");
    struct stat dz {};
    EXPECT_EQ(::stat(path("mnt/dense-zeros").c_str(), &dz), 0);
    EXPECT_EQ(static_cast<uint64_t>(dz.st_size), 48 * kMiB);
  });
  if (!mounted) std::fprintf(stderr, "note: this kernel cannot mount EROFS; content not checked\n");
}

TEST_F(ConvertBoundsTest, PlainLayerBuildsAsBeforeAndSparseBombsAreRefused) {
  if (!haveMkfsErofs()) GTEST_SKIP() << "mkfs.erofs is not installed";
  TarBuilder b(TarFilter::kZstd);
  b.dir("bin").file("bin/tool", std::string(100000, 't'), 0755).file("etc/motd", "hi\n");
  ASSERT_OK(writeFileAtomic(path("plain.blob"), b.finish()));
  auto image = buildLayerImage(path("plain.blob"), path("p"), LayerBounds{}, "sha256:plain");
  ASSERT_OK(image);
  EXPECT_FALSE(image->chunked);  // no holes: the default layout, tails packed
  EXPECT_EQ(image->stats.files, 2u);
  withMountedImage(image->path, path("mnt"), [&] {
    EXPECT_TRUE(readFile(path("mnt/bin/tool")).valueOr("") == std::string(100000, 't'));
    EXPECT_EQ(readFile(path("mnt/etc/motd")).valueOr(""), "hi\n");
  });

  TarBuilder s;
  s.add({.path = "big", .content = std::string(4096, 'x'), .sparse = {{0, 4096}}, .size = int64_t{1} << 40});
  ASSERT_OK(writeFileAtomic(path("sparse.blob"), s.finish()));
  auto refused = buildLayerImage(path("sparse.blob"), path("s"), LayerBounds{}, "sha256:tebibyte");
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("sha256:tebibyte"), std::string::npos) << refused.error().message;
  EXPECT_FALSE(pathExists(path("s.tree")));
  EXPECT_FALSE(pathExists(path("s.erofs")));
}

// Scratch directories.

TEST_F(ConvertBoundsTest, ScratchDirIsNamedForItsOwnerAndRemovedWithIt) {
  std::string where;
  {
    auto s = ScratchDir::create(dir_, false);
    ASSERT_OK(s);
    where = (*s)->path();
    ScratchOwner owner = scratchOwner(where.substr(where.rfind('/') + 1));
    EXPECT_EQ(owner.pid, ::getpid());
    EXPECT_EQ(owner.start_ticks, processStartTicks(::getpid()));
    ASSERT_OK(writeFileAtomic(where + "/x.blob", "x"));
  }
  EXPECT_FALSE(pathExists(where));
  EXPECT_EQ(scratchOwner("run-abc123").pid, 0);  // older versions' names
  EXPECT_EQ(scratchOwner("run-12-34-abcdef").pid, 12);
  EXPECT_EQ(scratchOwner("run-12-34-abcdefg").pid, 0);
  EXPECT_EQ(scratchOwner("run-x-34-abcdef").pid, 0);
  EXPECT_EQ(scratchOwner("other-12-34-abcdef").pid, 0);
}

TEST_F(ConvertBoundsTest, SweepRemovesOnlyScratchOfDeadConverters) {
  pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ASSERT_GT(child, 0);
  ::waitpid(child, nullptr, 0);
  const uint64_t ticks = processStartTicks(::getpid());
  const std::string self = std::to_string(::getpid());
  auto live = ScratchDir::create(dir_, false);
  ASSERT_OK(live);
  std::string dead = "run-" + std::to_string(child) + "-" + std::to_string(ticks) + "-aaaaaa";  // exited
  std::string reused = "run-" + self + "-" + std::to_string(ticks - 1) + "-bbbbbb";             // our pid, not us
  std::string locked = "run-" + self + "-" + std::to_string(ticks - 1) + "-cccccc";  // pid says dead, lock says alive
  for (const auto& d : {dead, reused, locked, std::string("run-abc123"), std::string("keep-me")}) {
    ASSERT_OK(makeDirs(path(d) + "/l.tree/etc"));
    ASSERT_OK(writeFileAtomic(path(d) + "/l.tree/etc/motd", "x"));
  }
  ASSERT_OK(writeFileAtomic(path(locked) + "/.lock", ""));
  int fd = ::open(path(locked + "/.lock").c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX), 0);
  auto removed = sweepStaleScratch(dir_);
  ::close(fd);
  ASSERT_OK(removed);
  std::vector<std::string> want{path(dead), path(reused)};
  std::sort(removed->begin(), removed->end());
  std::sort(want.begin(), want.end());
  EXPECT_EQ(*removed, want);
  EXPECT_FALSE(pathExists(path(dead)));
  EXPECT_FALSE(pathExists(path(reused)));
  EXPECT_TRUE(pathExists(path(locked)));
  EXPECT_TRUE(pathExists(path("run-abc123")));
  EXPECT_TRUE(pathExists(path("keep-me")));
  EXPECT_TRUE(pathExists((*live)->path()));
  // Once its owner lets go, the locked one goes too.
  auto again = sweepStaleScratch(dir_);
  ASSERT_OK(again);
  EXPECT_EQ(*again, std::vector<std::string>{path(locked)});
}

// In a forked child: a scratch directory with files, another thread busy (as
// curl or libfuse would be), then sig. The child must die of sig.
void convertAndGetKilled(const std::string& work, int sig) {
  auto s = ScratchDir::create(work, true);
  if (!s.ok()) ::_exit(3);
  std::string tree = (*s)->path() + "/l.tree";
  if (!makeDirs(tree + "/usr/lib").ok() || !writeFileAtomic((*s)->path() + "/l.blob", std::string(1 << 20, 'b')).ok())
    ::_exit(4);
  std::thread busy([&] {
    for (int i = 0; i < 100000; i++) (void)writeFileAtomic(tree + "/usr/lib/f" + std::to_string(i % 50), "x");
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ::kill(::getpid(), sig);
  std::this_thread::sleep_for(std::chrono::seconds(10));
  ::_exit(5);  // not killed
}

TEST_F(ConvertBoundsTest, SigtermAndSigintRemoveTheScratchDirAndStillKill) {
  GTEST_FLAG_SET(death_test_style, "fast");  // the child must see this test's dir_
  struct sigaction before {};
  ASSERT_EQ(::sigaction(SIGTERM, nullptr, &before), 0);
  for (int sig : {SIGTERM, SIGINT}) {
    EXPECT_EXIT(convertAndGetKilled(dir_, sig), ::testing::KilledBySignal(sig), "") << strsignal(sig);
    EXPECT_EQ(listDir(dir_), std::vector<std::string>{}) << strsignal(sig);
  }
  // No handler is left behind once the last scratch directory is gone.
  { ASSERT_OK(ScratchDir::create(dir_, true)); }
  struct sigaction sa {};
  ASSERT_EQ(::sigaction(SIGTERM, nullptr, &sa), 0);
  EXPECT_EQ(sa.sa_handler, before.sa_handler);
}

}  // namespace
}  // namespace offcore
