#include "image/tar_reader.h"

#include <map>

#include "tar_test_util.h"

namespace offcore {
namespace {

// Reads every entry (and body) of a blob in memory.
Result<std::vector<std::pair<TarEntry, std::string>>> readAll(const std::string& blob) {
  OC_ASSIGN_OR_RETURN(auto r, TarReader::openMemory(blob.data(), blob.size()));
  std::vector<std::pair<TarEntry, std::string>> out;
  TarEntry e;
  for (;;) {
    OC_ASSIGN_OR_RETURN(bool more, r->next(e));
    if (!more) return out;
    std::string body;
    Status read = r->readBody([&](uint64_t off, const void* p, size_t n) -> Status {
      if (body.size() < off) body.resize(off, '\0');
      body.append(static_cast<const char*>(p), n);
      return okStatus();
    });
    if (!read.ok()) return read.error().wrap("entry '" + e.path + "'");
    if (e.type == TarEntryType::kFile) body.resize(e.size, '\0');
    out.emplace_back(e, body);
  }
}

TEST(TarReaderPath, Sanitize) {
  const std::map<std::string, std::string> ok = {
      {"a", "a"},
      {"/a/b", "a/b"},
      {"./a/b/", "a/b"},
      {"//a//./b", "a/b"},
      {"./", "."},
      {"/", "."},
      {".", "."},
      {"a/.wh..wh..opq", "a/.wh..wh..opq"},
      {"..a/b..", "..a/b.."},
  };
  for (const auto& [in, want] : ok) {
    auto got = sanitizeTarPath(in);
    ASSERT_TRUE(got.ok()) << in << ": " << got.error().message;
    EXPECT_EQ(*got, want) << in;
  }
  for (const std::string& bad :
       std::vector<std::string>{"", "..", "../x", "a/../../b", "/..", "a/..", std::string("a\0b", 3)})
    EXPECT_FALSE(sanitizeTarPath(bad).ok()) << bad;
}

TEST(TarReader, ReadsEveryFieldOfEveryType) {
  std::string cap("\x01\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", 20);
  TarBuilder b;
  b.add({.path = "./", .type = AE_IFDIR, .mode = 0755});
  b.add({.path = "./usr/bin/",
         .type = AE_IFDIR,
         .mode = 01777,
         .uid = 7,
         .gid = 8,
         .mtime = 1600000000,
         .mtime_nsec = 123456789});
  b.add({.path = "./usr/bin/ping",
         .mode = 04755,
         .uid = 1000,
         .gid = 1001,
         .content = "ELF",
         .xattrs = {{"security.capability", cap}, {"user.k", "v"}}});
  b.add({.path = "/usr/bin/ping6", .hardlink = "./usr/bin/ping"});
  b.add({.path = "usr/bin/sh", .type = AE_IFLNK, .mode = 0777, .symlink = "/bin/dash"});
  b.add({.path = "dev/null", .type = AE_IFCHR, .mode = 0666, .rdev_major = 1, .rdev_minor = 3});
  b.add({.path = "dev/loop0", .type = AE_IFBLK, .mode = 0660, .gid = 6, .rdev_major = 7, .rdev_minor = 0});
  b.add({.path = "run/fifo", .type = AE_IFIFO, .mode = 0600});
  b.add({.path = "caf\xc3\xa9/na\xc3\xafve", .content = "utf8"});
  auto all = readAll(b.finish());
  ASSERT_OK(all);
  ASSERT_EQ(all->size(), 9u);
  const auto& v = *all;
  EXPECT_EQ(v[0].first.path, ".");
  EXPECT_EQ(v[0].first.type, TarEntryType::kDir);
  EXPECT_EQ(v[1].first.path, "usr/bin");
  EXPECT_EQ(v[1].first.mode, 01777u);
  EXPECT_EQ(v[1].first.uid, 7u);
  EXPECT_EQ(v[1].first.gid, 8u);
  EXPECT_EQ(v[1].first.mtime_sec, 1600000000);
  EXPECT_EQ(v[1].first.mtime_nsec, 123456789);
  const TarEntry& ping = v[2].first;
  EXPECT_EQ(ping.type, TarEntryType::kFile);
  EXPECT_EQ(ping.mode, 04755u);
  EXPECT_EQ(ping.uid, 1000u);
  EXPECT_EQ(ping.size, 3u);
  EXPECT_EQ(v[2].second, "ELF");
  ASSERT_EQ(ping.xattrs.size(), 2u);
  std::map<std::string, std::string> x(ping.xattrs.begin(), ping.xattrs.end());
  EXPECT_EQ(x["security.capability"], cap);  // binary, embedded NULs intact
  EXPECT_EQ(x["user.k"], "v");
  EXPECT_EQ(v[3].first.type, TarEntryType::kHardlink);
  EXPECT_EQ(v[3].first.path, "usr/bin/ping6");
  EXPECT_EQ(v[3].first.link_target, "usr/bin/ping");
  EXPECT_EQ(v[4].first.type, TarEntryType::kSymlink);
  EXPECT_EQ(v[4].first.link_target, "/bin/dash");  // symlink text is verbatim
  EXPECT_EQ(v[5].first.type, TarEntryType::kChar);
  EXPECT_EQ(v[5].first.rdev_major, 1u);
  EXPECT_EQ(v[5].first.rdev_minor, 3u);
  EXPECT_EQ(v[6].first.type, TarEntryType::kBlock);
  EXPECT_EQ(v[6].first.rdev_major, 7u);
  EXPECT_EQ(v[7].first.type, TarEntryType::kFifo);
  EXPECT_EQ(v[8].first.path, "caf\xc3\xa9/na\xc3\xafve");  // pax UTF-8 names keep their bytes
  EXPECT_EQ(v[8].second, "utf8");
}

TEST(TarReader, DetectsCompressionByContent) {
  for (TarFilter f : {TarFilter::kNone, TarFilter::kGzip, TarFilter::kZstd}) {
    TarBuilder b(f);
    b.file("a", std::string(100000, 'x'));
    std::string blob = b.finish();
    auto all = readAll(blob);
    ASSERT_OK(all);
    ASSERT_EQ(all->size(), 1u);
    EXPECT_EQ((*all)[0].second, std::string(100000, 'x'));
  }
}

TEST(TarReader, SparseFileReadsAsBlocksWithHoles) {
  std::string content(1 << 20, '\0');
  content.replace(4096, 5, "hello");
  content.replace(900000, 5, "world");
  TarBuilder b;
  b.add({.path = "sparse", .content = content, .sparse = {{0, 8192}, {897024, 8192}}});
  auto all = readAll(b.finish());
  ASSERT_OK(all);
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].first.size, content.size());
  EXPECT_EQ((*all)[0].second, content);
}

TEST(TarReader, EmptyBlobIsALayerWithoutEntries) {
  auto all = readAll("");
  ASSERT_OK(all);
  EXPECT_TRUE(all->empty());
  auto eof = readAll(std::string(1024, '\0'));
  ASSERT_OK(eof);
  EXPECT_TRUE(eof->empty());
}

TEST(TarReader, RejectsTraversalAndNamesTheEntry) {
  for (std::string bad : {"../x", "a/../../x"}) {
    TarBuilder b;
    b.file("ok", "1").file(bad, "2");
    auto all = readAll(b.finish());
    ASSERT_FALSE(all.ok()) << bad;
    EXPECT_NE(all.error().message.find("'" + bad + "'"), std::string::npos) << all.error().message;
  }
  TarBuilder h;
  h.file("ok", "1").hardlink("h", "../../etc/shadow");
  auto all = readAll(h.finish());
  ASSERT_FALSE(all.ok());
  EXPECT_NE(all.error().message.find("hardlink target"), std::string::npos) << all.error().message;
}

TEST(TarReader, RejectsMalformedArchives) {
  TarBuilder b;
  b.file("first", std::string(5000, 'a')).file("second", std::string(5000, 'b'));
  std::string blob = b.finish();

  auto truncated = readAll(blob.substr(0, 3000));  // inside the first body
  ASSERT_FALSE(truncated.ok());
  EXPECT_NE(truncated.error().message.find("first"), std::string::npos) << truncated.error().message;

  std::string corrupt = blob;
  size_t second = corrupt.find("second");
  ASSERT_NE(second, std::string::npos);
  corrupt[second + 148] ^= 0x55;  // checksum field of second's header block
  auto bad = readAll(corrupt);
  ASSERT_FALSE(bad.ok());

  EXPECT_FALSE(readAll("definitely not a tar archive, just text that is long enough to bid on").ok());
  EXPECT_FALSE(readAll(std::string(600, '\x7f')).ok());
}

TEST(TarReader, RejectsOtherArchiveFormats) {
  struct archive* a = archive_write_new();
  archive_write_set_format_cpio_newc(a);
  std::string out;
  archive_write_open(
      a, &out, nullptr,
      [](struct archive*, void* o, const void* p, size_t n) -> la_ssize_t {
        static_cast<std::string*>(o)->append(static_cast<const char*>(p), n);
        return static_cast<la_ssize_t>(n);
      },
      nullptr);
  struct archive_entry* e = archive_entry_new();
  archive_entry_set_pathname(e, "x");
  archive_entry_set_filetype(e, AE_IFREG);
  archive_entry_set_size(e, 0);
  archive_write_header(a, e);
  archive_entry_free(e);
  archive_write_close(a);
  archive_write_free(a);
  auto all = readAll(out);
  EXPECT_FALSE(all.ok());
}

TEST(TarReader, OpenFileReportsMissingBlob) {
  auto r = TarReader::openFile("/nonexistent/blob.tar");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("/nonexistent/blob.tar"), std::string::npos);
}

}  // namespace
}  // namespace offcore
