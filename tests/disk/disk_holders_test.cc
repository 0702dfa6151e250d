#include "disk/disk_holders.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "base/files.h"
#include "disk/kept_disk.h"

namespace offcore {
namespace {

namespace fs = std::filesystem;

const char* kMountinfo =
    "22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
    "40 22 7:3 / /mnt/x rw,relatime shared:9 - ext4 /dev/loop3 rw\n"
    "41 22 7:3 / /mnt/x2 rw,relatime - ext4 /dev/loop3 rw\n"
    "42 22 0:50 / /run/offcore/n1/disks/d1 rw,nosuid shared:12 - fuse.offcore-disk offcore-disk rw\n"
    "43 22 0:51 / /mnt/ro ro - erofs /run/offcore/n1/disks/d1 ro\n";

TEST(DiskHoldersTest, MountPointsOfASource) {
  EXPECT_EQ(mountPointsOf(kMountinfo, "/dev/loop3"), (std::vector<std::string>{"/mnt/x", "/mnt/x2"}));
  EXPECT_EQ(mountPointsOf(kMountinfo, "/run/offcore/n1/disks/d1"), (std::vector<std::string>{"/mnt/ro"}));
  EXPECT_TRUE(mountPointsOf(kMountinfo, "/dev/loop4").empty());
  EXPECT_TRUE(mountPointsOf("garbage\n\n", "/dev/loop3").empty());
}

TEST(DiskHoldersTest, MountedAtMatchesTheMountPointOnly) {
  EXPECT_TRUE(mountedAt(kMountinfo, "/run/offcore/n1/disks/d1"));
  EXPECT_FALSE(mountedAt(kMountinfo, "/run/offcore/n1/disks"));
  EXPECT_FALSE(mountedAt(kMountinfo, "/dev/loop3"));
}

// A fake /proc and /sys: loop3 is backed by the disk and mounted twice,
// loop4 by another file; pid 77 has the disk open, pid 78 something else.
TEST(DiskHoldersTest, NamesLoopsMountsAndProcesses) {
  std::string root = fs::temp_directory_path() / ("oc-holders-" + std::to_string(::getpid()));
  const std::string disk = "/run/offcore/n1/disks/d1";
  ASSERT_TRUE(makeDirs(root + "/sys/block/loop3/loop").ok());
  ASSERT_TRUE(makeDirs(root + "/sys/block/loop4/loop").ok());
  ASSERT_TRUE(makeDirs(root + "/sys/block/vda").ok());
  ASSERT_TRUE(writeFileAtomic(root + "/sys/block/loop3/loop/backing_file", disk + "\n").ok());
  ASSERT_TRUE(writeFileAtomic(root + "/sys/block/loop4/loop/backing_file", "/other\n").ok());
  ASSERT_TRUE(makeDirs(root + "/proc/self").ok());
  ASSERT_TRUE(writeFileAtomic(root + "/proc/self/mountinfo", kMountinfo).ok());
  for (const char* pid : {"77", "78", "79"}) {
    ASSERT_TRUE(makeDirs(root + "/proc/" + pid + "/fd").ok());
    ASSERT_TRUE(writeFileAtomic(root + "/proc/" + pid + "/comm", std::string("p") + pid + "\n").ok());
  }
  fs::create_symlink(disk, root + "/proc/77/fd/3");
  fs::create_symlink("/dev/null", root + "/proc/78/fd/0");
  fs::create_symlink(disk, root + "/proc/79/fd/5");  // the caller itself

  HostView view{root + "/proc", root + "/sys", 79};
  EXPECT_EQ(diskHolders(disk, view), (std::vector<std::string>{"/dev/loop3 (mounted on /mnt/x, /mnt/x2)",
                                                               "mounted on /mnt/ro", "pid 77 (p77)"}));
  EXPECT_TRUE(diskHolders("/run/offcore/n1/disks/unused", view).empty());
  EXPECT_EQ(joinHolders({"a", "b"}), "a, b");
  (void)removeTree(root);
}

}  // namespace
}  // namespace offcore
