// Shared by the image tests: builds layer tars in memory with libarchive's
// writer (pax, like docker/buildkit layers), and a per-test scratch directory.
#pragma once

#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>
#include <locale.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "base/files.h"

// Tests describe entries with designated initializers and leave the rest at
// their defaults, which -Wextra would flag on every TarSpec{...}.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace offcore {

struct TarSpec {
  std::string path;
  unsigned type = AE_IFREG;  // AE_IFREG, AE_IFDIR, AE_IFLNK, AE_IFCHR, AE_IFBLK, AE_IFIFO
  unsigned mode = 0644;
  int64_t uid = 0, gid = 0;
  int64_t mtime = 1700000000;
  long mtime_nsec = 0;
  std::string content;
  std::string symlink;   // AE_IFLNK target
  std::string hardlink;  // makes it a hardlink to this path
  unsigned rdev_major = 0, rdev_minor = 0;
  std::vector<std::pair<std::string, std::string>> xattrs;
  std::vector<std::pair<int64_t, int64_t>> sparse;  // (offset, length) data regions; content is the full file
  // The declared size when it is not content.size(): a sparse file whose
  // content ends before its holes do (a 1 TiB file with 4 KiB of data).
  int64_t size = -1;
};

enum class TarFilter { kNone, kGzip, kZstd };

class TarBuilder {
 public:
  explicit TarBuilder(TarFilter filter = TarFilter::kNone) : a_(archive_write_new()) {
    archive_write_set_format_pax(a_);
    if (filter == TarFilter::kGzip) archive_write_add_filter_gzip(a_);
    if (filter == TarFilter::kZstd) archive_write_add_filter_zstd(a_);
    // No padding to 10 KiB records: keeps seeds small.
    archive_write_set_bytes_per_block(a_, 512);
    archive_write_set_bytes_in_last_block(a_, 1);
    archive_write_open(a_, &out_, nullptr, &TarBuilder::append, nullptr);
  }
  ~TarBuilder() { archive_write_free(a_); }

  TarBuilder& add(const TarSpec& s) {
    // The pax writer converts names to UTF-8 from the current locale and
    // crashes (strlen(NULL)) on non-ASCII names under the C locale.
    static const locale_t utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(0));
    locale_t old = uselocale(utf8);
    addEntry(s);
    uselocale(old);
    return *this;
  }

  void addEntry(const TarSpec& s) {
    struct archive_entry* e = archive_entry_new();
    archive_entry_set_pathname_utf8(e, s.path.c_str());
    archive_entry_set_filetype(e, s.type);
    archive_entry_set_perm(e, s.mode);
    archive_entry_set_uid(e, s.uid);
    archive_entry_set_gid(e, s.gid);
    archive_entry_set_mtime(e, s.mtime, s.mtime_nsec);
    if (s.type == AE_IFLNK) archive_entry_set_symlink_utf8(e, s.symlink.c_str());
    if (!s.hardlink.empty()) archive_entry_set_hardlink_utf8(e, s.hardlink.c_str());
    if (s.type == AE_IFCHR || s.type == AE_IFBLK) {
      archive_entry_set_rdevmajor(e, s.rdev_major);
      archive_entry_set_rdevminor(e, s.rdev_minor);
    }
    for (const auto& [k, v] : s.xattrs) archive_entry_xattr_add_entry(e, k.c_str(), v.data(), v.size());
    bool body = s.type == AE_IFREG && s.hardlink.empty();
    archive_entry_set_size(e, !body ? 0 : s.size >= 0 ? s.size : static_cast<int64_t>(s.content.size()));
    // After the size: libarchive drops sparse regions beyond it.
    for (const auto& [off, len] : s.sparse) archive_entry_sparse_add_entry(e, off, len);
    EXPECT_EQ(archive_write_header(a_, e), ARCHIVE_OK) << s.path << ": " << archive_error_string(a_);
    if (body && !s.content.empty()) {
      EXPECT_EQ(archive_write_data(a_, s.content.data(), s.content.size()), static_cast<la_ssize_t>(s.content.size()));
    }
    archive_entry_free(e);
  }
  TarBuilder& file(const std::string& path, const std::string& content, unsigned mode = 0644) {
    return add(TarSpec{.path = path, .mode = mode, .content = content});
  }
  TarBuilder& dir(const std::string& path, unsigned mode = 0755) {
    return add(TarSpec{.path = path, .type = AE_IFDIR, .mode = mode});
  }
  TarBuilder& symlink(const std::string& path, const std::string& target) {
    return add(TarSpec{.path = path, .type = AE_IFLNK, .mode = 0777, .symlink = target});
  }
  TarBuilder& hardlink(const std::string& path, const std::string& target) {
    return add(TarSpec{.path = path, .hardlink = target});
  }

  std::string finish() {
    EXPECT_EQ(archive_write_close(a_), ARCHIVE_OK) << archive_error_string(a_);
    return out_;
  }

 private:
  static la_ssize_t append(struct archive*, void* out, const void* buf, size_t n) {
    static_cast<std::string*>(out)->append(static_cast<const char*>(buf), n);
    return static_cast<la_ssize_t>(n);
  }

  struct archive* a_;
  std::string out_;
};

// Compresses a crafted byte stream (no tar framing added) with libarchive's
// writer: bombs, and tars written by hand.
class RawCompressor {
 public:
  explicit RawCompressor(TarFilter filter) : a_(archive_write_new()) {
    archive_write_set_format_raw(a_);
    if (filter == TarFilter::kGzip) archive_write_add_filter_gzip(a_);
    if (filter == TarFilter::kZstd) archive_write_add_filter_zstd(a_);
    archive_write_set_bytes_per_block(a_, 512);
    archive_write_set_bytes_in_last_block(a_, 1);
    archive_write_open(a_, &out_, nullptr, &RawCompressor::append, nullptr);
    struct archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, "stream");
    archive_entry_set_filetype(e, AE_IFREG);
    EXPECT_EQ(archive_write_header(a_, e), ARCHIVE_OK) << archive_error_string(a_);
    archive_entry_free(e);
  }
  ~RawCompressor() { archive_write_free(a_); }
  RawCompressor& write(const std::string& data) {
    EXPECT_EQ(archive_write_data(a_, data.data(), data.size()), static_cast<la_ssize_t>(data.size()));
    return *this;
  }
  RawCompressor& zeros(uint64_t n) {
    const std::string block(1 << 20, '\0');
    for (; n > 0; n -= std::min<uint64_t>(n, block.size())) write(block.substr(0, std::min<uint64_t>(n, block.size())));
    return *this;
  }
  std::string finish() {
    EXPECT_EQ(archive_write_close(a_), ARCHIVE_OK) << archive_error_string(a_);
    return out_;
  }

 private:
  static la_ssize_t append(struct archive*, void* out, const void* buf, size_t n) {
    static_cast<std::string*>(out)->append(static_cast<const char*>(buf), n);
    return static_cast<la_ssize_t>(n);
  }
  struct archive* a_;
  std::string out_;
};

// One ustar header block, for tars libarchive's writer will not produce.
inline std::string ustarHeader(const std::string& name, char type, uint64_t size, const std::string& link = "") {
  std::string h(512, '\0');
  h.replace(0, std::min<size_t>(name.size(), 100), name.substr(0, 100));
  std::snprintf(&h[100], 8, "%07o", 0644);
  std::snprintf(&h[108], 8, "%07o", 0);
  std::snprintf(&h[116], 8, "%07o", 0);
  std::snprintf(&h[124], 12, "%011llo", static_cast<unsigned long long>(size));
  std::snprintf(&h[136], 12, "%011o", 1700000000);
  h[156] = type;
  h.replace(157, std::min<size_t>(link.size(), 100), link.substr(0, 100));
  h.replace(257, 8,
            std::string("ustar\0"
                        "00",
                        8));
  h.replace(148, 8, 8, ' ');
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  std::snprintf(&h[148], 8, "%06o", sum);
  h[155] = ' ';
  return h;
}

// A pax extended header ('x') holding one record, padded to a block.
inline std::string paxHeader(const std::string& key, const std::string& value) {
  std::string body = " " + key + "=" + value + "\n";
  size_t len = body.size() + 1;
  while (std::to_string(len).size() + body.size() != len) len++;
  std::string rec = std::to_string(len) + body;
  std::string out = ustarHeader("PaxHeader", 'x', rec.size()) + rec;
  out.resize((out.size() + 511) / 512 * 512, '\0');
  return out;
}

// A scratch directory under /tmp, unique per process and test.
class ScratchDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = "/tmp/offcore_image_" + std::to_string(::getpid()) + "_" + info->test_suite_name() + "_" + info->name();
    ASSERT_TRUE(removeTree(dir_).ok());
    ASSERT_TRUE(makeDirs(dir_).ok());
  }
  void TearDown() override { (void)removeTree(dir_); }
  std::string path(const std::string& rel) const { return dir_ + "/" + rel; }

  std::string dir_;
};

#ifndef ASSERT_OK
#define ASSERT_OK(expr)                                            \
  do {                                                             \
    auto&& st_ = (expr);                                           \
    ASSERT_TRUE(st_.ok()) << #expr << ": " << st_.error().message; \
  } while (0)
#endif

}  // namespace offcore
