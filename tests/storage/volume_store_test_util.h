// Shared by the VolumeStore tests: a per-test store directory under /tmp
// or another root (unique per PID, removed afterwards) and byte helpers.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <string>

#include "base/files.h"
#include "storage/volume_store.h"

namespace offcore {

inline constexpr uint64_t kMiB = 1ULL << 20;
inline constexpr uint64_t kBlk = kVolumeBlockSize;

class StoreDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = info->name();  // "Case/Param" for parameterized suites: one directory level
    std::replace(name.begin(), name.end(), '/', '_');
    dir_ = root() + "/offcore_vstore_" + std::to_string(::getpid()) + "_" + name;
    ASSERT_TRUE(removeTree(dir_).ok());
  }
  void TearDown() override {
    if (!dir_.empty()) (void)removeTree(dir_);
  }
  // Where the store directory is made: on disk (reads by pread) unless a
  // suite runs in memory too (reads through the mapping).
  virtual std::string root() const { return "/tmp"; }

  std::unique_ptr<VolumeStore> openStore(uint64_t capacity = 0) {
    auto s = VolumeStore::open(dir_, capacity);
    EXPECT_TRUE(s.ok()) << s.error().message;
    return s.ok() ? std::move(*s) : nullptr;
  }
  std::shared_ptr<BlockDevice> dev(VolumeStore& s, const std::string& name) {
    auto d = s.openVolume(name);
    EXPECT_TRUE(d.ok()) << d.error().message;
    return d.ok() ? *d : nullptr;
  }
  FsckReport fsck() {
    auto r = VolumeStore::fsck(dir_);
    EXPECT_TRUE(r.ok()) << r.error().message;
    return r.ok() ? *r : FsckReport{};
  }
  static std::string fsckText(const FsckReport& r) {
    std::string out;
    for (const auto& p : r.problems) out += p + "\n";
    return out;
  }

  std::string dir_;
};

inline std::string bytes(char c, size_t n = kBlk) { return std::string(n, c); }

inline Status put(BlockDevice& d, uint64_t off, const std::string& data) {
  return d.write(off, data.data(), data.size());
}

inline std::string get(BlockDevice& d, uint64_t off, size_t len = kBlk) {
  std::string out(len, '?');
  Status st = d.read(off, out.data(), len);
  EXPECT_TRUE(st.ok()) << st.error().message;
  return out;
}

#define ASSERT_OK(expr)                                            \
  do {                                                             \
    auto&& st_ = (expr);                                           \
    ASSERT_TRUE(st_.ok()) << #expr << ": " << st_.error().message; \
  } while (0)

}  // namespace offcore
