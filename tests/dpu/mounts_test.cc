#include "dpu/mounts.h"

#include <gtest/gtest.h>

namespace offcore {
namespace {

TEST(MountsTest, ParsesMountPointsWithEscapes) {
  std::string info =
      "22 1 0:21 / /proc rw,nosuid - proc proc rw\n"
      "90 22 0:50 / /run/offcore/a/disks/my\\040disk rw - fuse fuse rw\n";
  auto points = parseMountPoints(info);
  ASSERT_EQ(points.size(), 2u);
  EXPECT_EQ(points[1], "/run/offcore/a/disks/my disk");
}

TEST(MountsTest, MountsBelowIgnoresSiblingPrefixes) {
  // /proc is mounted on every Linux machine, /procx never is.
  auto below = mountsBelow("/proc");
  ASSERT_FALSE(below.empty());
  for (const auto& p : below) EXPECT_TRUE(p == "/proc" || p.rfind("/proc/", 0) == 0) << p;
}

}  // namespace
}  // namespace offcore
