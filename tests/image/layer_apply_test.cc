// Runs as root (like all offcore unit tests): chown, mknod and trusted.*
// xattrs are part of what a layer unpacks.
#include "image/layer_apply.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include "tar_test_util.h"

namespace offcore {
namespace {

class LayerApplyTest : public ScratchDirTest {
 protected:
  void SetUp() override {
    ScratchDirTest::SetUp();
    dest_ = path("dest");
    outside_ = path("outside");
    ASSERT_OK(makeDirs(dest_));
    ASSERT_OK(makeDirs(outside_));
    ASSERT_OK(writeFileAtomic(outside_ + "/victim", "precious"));
  }
  Result<ApplyStats> apply(const std::string& blob, WhiteoutMode mode = WhiteoutMode::kOverlayForm) {
    return applyLayerMemory(blob.data(), blob.size(), dest_, mode);
  }
  struct stat st(const std::string& rel) {
    struct stat s {};
    EXPECT_EQ(::lstat((dest_ + "/" + rel).c_str(), &s), 0) << rel;
    return s;
  }
  bool exists(const std::string& rel) { return pathExists(dest_ + "/" + rel); }
  std::string xattr(const std::string& rel, const std::string& name) {
    char buf[256];
    ssize_t n = ::lgetxattr((dest_ + "/" + rel).c_str(), name.c_str(), buf, sizeof buf);
    return n < 0 ? "<none>" : std::string(buf, static_cast<size_t>(n));
  }
  std::string content(const std::string& rel) { return readFile(dest_ + "/" + rel).valueOr("<unreadable>"); }
  std::string link(const std::string& rel) {
    char buf[4096];
    ssize_t n = ::readlink((dest_ + "/" + rel).c_str(), buf, sizeof buf);
    return n < 0 ? "<none>" : std::string(buf, static_cast<size_t>(n));
  }
  void expectOutsideUntouched() {
    EXPECT_EQ(readFile(outside_ + "/victim").valueOr(""), "precious");
    EXPECT_FALSE(pathExists(outside_ + "/passwd"));
    EXPECT_FALSE(pathExists(outside_ + "/x"));
  }

  std::string dest_, outside_;
};

TEST_F(LayerApplyTest, UnpacksEveryTypeWithItsMetadata) {
  std::string cap("\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", 20);
  std::string sparse(3 << 20, '\0');
  sparse.replace(1 << 20, 4, "data");
  TarBuilder b;
  b.add({.path = "./", .type = AE_IFDIR, .mode = 0700});
  b.add({.path = "etc/",
         .type = AE_IFDIR,
         .mode = 0750,
         .uid = 5,
         .gid = 6,
         .mtime = 1500000000,
         .mtime_nsec = 42,
         .xattrs = {{"trusted.tag", "t"}}});
  b.add({.path = "etc/motd",
         .mode = 0640,
         .uid = 1000,
         .gid = 1001,
         .mtime = 1600000000,
         .mtime_nsec = 999,
         .content = "hello",
         .xattrs = {{"user.note", std::string("a\0b", 3)}}});
  b.add({.path = "bin/ping",
         .mode = 04755,
         .uid = 0,
         .gid = 0,
         .content = "ELF",
         .xattrs = {{"security.capability", cap}}});
  b.add({.path = "bin/su", .mode = 06755, .uid = 1000, .gid = 1000, .content = "su"});
  b.add({.path = "tmp/", .type = AE_IFDIR, .mode = 01777});
  // Hardlink headers carry the inode's metadata again (containerd applies it
  // to the shared inode, so a bare one would drop setuid and the capability).
  b.add({.path = "bin/ping-hard", .mode = 04755, .hardlink = "bin/ping", .xattrs = {{"security.capability", cap}}});
  b.add({.path = "bin/sh", .type = AE_IFLNK, .mode = 0777, .uid = 3, .gid = 4, .mtime = 1234, .symlink = "/bin/dash"});
  b.add({.path = "dev/null", .type = AE_IFCHR, .mode = 0666, .rdev_major = 1, .rdev_minor = 3});
  b.add({.path = "dev/loop0", .type = AE_IFBLK, .mode = 0660, .gid = 6, .rdev_major = 7, .rdev_minor = 0});
  b.add({.path = "run/initctl", .type = AE_IFIFO, .mode = 0600});
  b.add({.path = "empty", .mode = 0444});
  b.add({.path = "sparse", .content = sparse, .sparse = {{1 << 20, 4096}}});
  auto stats = apply(b.finish());
  ASSERT_OK(stats);
  EXPECT_EQ(stats->entries, 13u);
  EXPECT_EQ(stats->files, 5u);
  EXPECT_EQ(stats->dirs, 2u);  // the root entry is skipped, like containerd does
  EXPECT_EQ(stats->hardlinks, 1u);
  EXPECT_EQ(stats->symlinks, 1u);
  EXPECT_EQ(stats->devices, 3u);
  EXPECT_EQ(stats->bytes, 5u + 3u + 2u + 4096u);

  EXPECT_EQ(st(".").st_mode & 07777, 0755u);  // the root entry does not change the root
  struct stat etc = st("etc");
  EXPECT_TRUE(S_ISDIR(etc.st_mode));
  EXPECT_EQ(etc.st_mode & 07777, 0750u);
  EXPECT_EQ(etc.st_uid, 5u);
  EXPECT_EQ(etc.st_gid, 6u);
  // Written after motd was created inside it: the directory time must win.
  EXPECT_EQ(etc.st_mtim.tv_sec, 1500000000);
  EXPECT_EQ(etc.st_mtim.tv_nsec, 42);
  EXPECT_EQ(xattr("etc", "trusted.tag"), "t");
  struct stat motd = st("etc/motd");
  EXPECT_EQ(motd.st_mode & 07777, 0640u);
  EXPECT_EQ(motd.st_uid, 1000u);
  EXPECT_EQ(motd.st_gid, 1001u);
  EXPECT_EQ(motd.st_mtim.tv_sec, 1600000000);
  EXPECT_EQ(motd.st_mtim.tv_nsec, 999);
  EXPECT_EQ(content("etc/motd"), "hello");
  EXPECT_EQ(xattr("etc/motd", "user.note"), std::string("a\0b", 3));
  // chown clears setuid/setgid and file capabilities; both must survive.
  EXPECT_EQ(st("bin/ping").st_mode & 07777, 04755u);
  EXPECT_EQ(xattr("bin/ping", "security.capability"), cap);
  EXPECT_EQ(st("bin/su").st_mode & 07777, 06755u);
  EXPECT_EQ(st("tmp").st_mode & 07777, 01777u);
  EXPECT_EQ(st("bin/ping-hard").st_ino, st("bin/ping").st_ino);
  EXPECT_EQ(st("bin/ping").st_nlink, 2u);
  struct stat sh = st("bin/sh");
  EXPECT_TRUE(S_ISLNK(sh.st_mode));
  EXPECT_EQ(link("bin/sh"), "/bin/dash");
  EXPECT_EQ(sh.st_uid, 3u);
  EXPECT_EQ(sh.st_mtim.tv_sec, 1234);
  struct stat null = st("dev/null");
  EXPECT_TRUE(S_ISCHR(null.st_mode));
  EXPECT_EQ(null.st_rdev, makedev(1, 3));
  EXPECT_EQ(null.st_mode & 07777, 0666u);
  EXPECT_TRUE(S_ISBLK(st("dev/loop0").st_mode));
  EXPECT_EQ(st("dev/loop0").st_rdev, makedev(7, 0));
  EXPECT_TRUE(S_ISFIFO(st("run/initctl").st_mode));
  EXPECT_EQ(st("empty").st_size, 0);
  EXPECT_EQ(st("empty").st_mode & 07777, 0444u);
  struct stat sp = st("sparse");
  EXPECT_EQ(sp.st_size, 3 << 20);
  EXPECT_LT(sp.st_blocks * 512, 1 << 20);  // holes stayed holes
  EXPECT_EQ(content("sparse"), sparse);
  // Implicit parents are made like containerd's mkparent: 0755.
  EXPECT_EQ(st("bin").st_mode & 07777, 0755u);
}

TEST_F(LayerApplyTest, OverlayFormWritesWhiteoutsAndOpaqueMarkers) {
  for (bool marker_first : {true, false}) {
    ASSERT_OK(removeTree(dest_));
    ASSERT_OK(makeDirs(dest_));
    TarBuilder b;
    b.dir("d");
    if (marker_first) b.file("d/.wh..wh..opq", "");
    b.file("d/new", "n");
    if (!marker_first) b.file("d/.wh..wh..opq", "");
    b.add({.path = "gone/.wh.old", .uid = 12, .gid = 34});
    b.file(".wh.top", "");
    auto stats = apply(b.finish());
    ASSERT_OK(stats);
    EXPECT_EQ(stats->whiteouts, 2u);
    EXPECT_EQ(stats->opaque_dirs, 1u);
    EXPECT_EQ(xattr("d", "trusted.overlay.opaque"), "y") << marker_first;
    EXPECT_EQ(content("d/new"), "n");
    EXPECT_FALSE(exists("d/.wh..wh..opq"));
    struct stat w = st("gone/old");
    EXPECT_TRUE(S_ISCHR(w.st_mode));
    EXPECT_EQ(w.st_rdev, makedev(0, 0));
    EXPECT_EQ(w.st_mode & 07777, 0u);
    EXPECT_EQ(w.st_uid, 12u);
    EXPECT_EQ(w.st_gid, 34u);
    EXPECT_TRUE(S_ISCHR(st("top").st_mode));
    EXPECT_FALSE(exists("gone/.wh.old"));
  }
}

TEST_F(LayerApplyTest, InPlaceWhiteoutsRemoveLowerContent) {
  TarBuilder lower;
  lower.dir("a").dir("a/x").file("a/x/deep", "1").file("a/y", "2").file("a/z", "3").symlink("a/l", "/");
  ASSERT_OK(apply(lower.finish(), WhiteoutMode::kApplyInPlace));
  TarBuilder upper;
  upper.file("a/.wh.x", "").file("a/.wh.l", "").file("a/.wh.nothing", "").file("a/y", "new").file("b/.wh.c", "");
  auto stats = apply(upper.finish(), WhiteoutMode::kApplyInPlace);
  ASSERT_OK(stats);
  EXPECT_EQ(stats->whiteouts, 4u);
  EXPECT_EQ(stats->entries, 5u);
  EXPECT_FALSE(exists("a/x"));
  EXPECT_FALSE(exists("a/l"));
  EXPECT_FALSE(exists("a/.wh.x"));
  EXPECT_EQ(content("a/y"), "new");
  EXPECT_EQ(content("a/z"), "3");
  EXPECT_FALSE(exists("b/c"));
}

TEST_F(LayerApplyTest, InPlaceOpaqueKeepsOnlyWhatThisLayerCreated) {
  for (bool marker_first : {true, false}) {
    ASSERT_OK(removeTree(dest_));
    ASSERT_OK(makeDirs(dest_));
    TarBuilder lower;
    lower.dir("d").file("d/old", "o").dir("d/sub").file("d/sub/old2", "o").file("d/keep", "lower").file("other", "x");
    ASSERT_OK(apply(lower.finish(), WhiteoutMode::kApplyInPlace));
    TarBuilder upper;
    upper.dir("d");
    if (marker_first) upper.file("d/.wh..wh..opq", "");
    upper.dir("d/sub").file("d/sub/new", "n").file("d/keep", "upper");
    if (!marker_first) upper.file("d/.wh..wh..opq", "");
    auto stats = apply(upper.finish(), WhiteoutMode::kApplyInPlace);
    ASSERT_OK(stats);
    EXPECT_EQ(stats->opaque_dirs, 1u);
    EXPECT_FALSE(exists("d/old")) << marker_first;
    EXPECT_FALSE(exists("d/sub/old2")) << marker_first;  // opaque hides lower content at every depth
    EXPECT_EQ(content("d/sub/new"), "n");
    EXPECT_EQ(content("d/keep"), "upper");
    EXPECT_EQ(content("other"), "x");
    EXPECT_EQ(xattr("d", "trusted.overlay.opaque"), "<none>");
    EXPECT_FALSE(exists("d/.wh..wh..opq"));
  }
}

TEST_F(LayerApplyTest, EntriesReplaceOtherTypesAndDirectoriesMerge) {
  TarBuilder lower;
  lower.dir("p", 0700).file("p/child", "c").file("q", "file").dir("r").file("r/kept", "k").file("s", "s");
  lower.symlink("t", "/elsewhere");
  ASSERT_OK(apply(lower.finish(), WhiteoutMode::kApplyInPlace));
  TarBuilder upper;
  upper.file("p", "now a file").dir("q").add({.path = "r", .type = AE_IFDIR, .mode = 0711, .uid = 9, .mtime = 77});
  upper.symlink("s", "target").file("t", "regular");
  ASSERT_OK(apply(upper.finish(), WhiteoutMode::kApplyInPlace));
  EXPECT_EQ(content("p"), "now a file");
  EXPECT_TRUE(S_ISDIR(st("q").st_mode));
  EXPECT_EQ(content("r/kept"), "k");
  EXPECT_EQ(st("r").st_mode & 07777, 0711u);
  EXPECT_EQ(st("r").st_uid, 9u);
  EXPECT_EQ(st("r").st_mtim.tv_sec, 77);
  EXPECT_EQ(link("s"), "target");
  EXPECT_TRUE(S_ISREG(st("t").st_mode));
}

TEST_F(LayerApplyTest, CompressedLayersFromFiles) {
  for (TarFilter f : {TarFilter::kGzip, TarFilter::kZstd}) {
    ASSERT_OK(removeTree(dest_));
    ASSERT_OK(makeDirs(dest_));
    TarBuilder b(f);
    b.dir("d").file("d/f", std::string(70000, 'z')).hardlink("d/h", "d/f");
    std::string blob = path("layer.blob");
    ASSERT_OK(writeFileAtomic(blob, b.finish()));
    auto stats = applyLayerFile(blob, dest_, WhiteoutMode::kOverlayForm);
    ASSERT_OK(stats);
    EXPECT_EQ(stats->bytes, 70000u);
    EXPECT_EQ(content("d/h"), std::string(70000, 'z'));
  }
  EXPECT_FALSE(applyLayerFile(path("missing.blob"), dest_, WhiteoutMode::kOverlayForm).ok());
  EXPECT_FALSE(applyLayerMemory("", 0, path("missing-dest"), WhiteoutMode::kOverlayForm).ok());
}

TEST_F(LayerApplyTest, TraversalInNamesIsRejected) {
  for (WhiteoutMode mode : {WhiteoutMode::kOverlayForm, WhiteoutMode::kApplyInPlace}) {
    for (std::string name : {"../x", "a/../../x", "../outside/victim"}) {
      TarBuilder b;
      b.file(name, "evil");
      auto r = apply(b.finish(), mode);
      ASSERT_FALSE(r.ok()) << name;
      EXPECT_NE(r.error().message.find(name), std::string::npos) << r.error().message;
    }
    TarBuilder h;
    h.hardlink("h", "../outside/victim");
    EXPECT_FALSE(apply(h.finish(), mode).ok());
    expectOutsideUntouched();
  }
  // ".wh.." / ".wh..." would name dest itself or its parent.
  ASSERT_OK(writeFileAtomic(dest_ + "/keep", "k"));
  for (WhiteoutMode mode : {WhiteoutMode::kOverlayForm, WhiteoutMode::kApplyInPlace}) {
    for (std::string name : {".wh..", ".wh...", "sub/.wh..", "sub/.wh...", ".wh."}) {
      TarBuilder b;
      b.dir("sub").file("sub/f", "f").file(name, "");
      auto r = apply(b.finish(), mode);
      EXPECT_FALSE(r.ok()) << name;
      EXPECT_EQ(content("keep"), "k") << name;
      expectOutsideUntouched();
    }
  }
  TarBuilder abs;
  abs.file(outside_ + "/x", "stays inside");  // absolute names are relative to dest
  ASSERT_OK(apply(abs.finish()));
  EXPECT_EQ(content(outside_.substr(1) + "/x"), "stays inside");
  expectOutsideUntouched();
}

TEST_F(LayerApplyTest, SymlinksNeverLeadOutside) {
  // Absolute symlink to a real directory outside, then writes through it.
  TarBuilder b;
  b.symlink("link", outside_).file("link/x", "evil");
  EXPECT_FALSE(apply(b.finish()).ok());  // resolves to dest/<outside>, which does not exist
  expectOutsideUntouched();

  // Relative escape: clamped at dest, so "up/x" lands in dest/x.
  TarBuilder rel;
  rel.symlink("up", "../../../../../..").file("up/x", "inside");
  ASSERT_OK(apply(rel.finish()));
  EXPECT_EQ(content("x"), "inside");
  expectOutsideUntouched();

  // The /etc case: with dest/etc present, link/passwd is dest/etc/passwd.
  auto before = readFile("/etc/passwd");
  ASSERT_OK(before);
  TarBuilder etc;
  etc.dir("etc").symlink("etclink", "/etc").file("etclink/passwd", "root::0:0::/:/bin/sh\n");
  ASSERT_OK(apply(etc.finish()));
  EXPECT_EQ(content("etc/passwd"), "root::0:0::/:/bin/sh\n");
  EXPECT_EQ(readFile("/etc/passwd").valueOr(""), *before);

  // Entries at a symlink's own path replace the symlink, never write through.
  TarBuilder over;
  over.symlink("v", outside_ + "/victim").file("v", "replaced").symlink("w", outside_ + "/victim");
  over.add({.path = "w", .type = AE_IFDIR, .mode = 0777});
  over.symlink("hl", "/etc/passwd").hardlink("hl2", "hl");  // links the symlink itself
  ASSERT_OK(apply(over.finish()));
  EXPECT_EQ(content("v"), "replaced");
  EXPECT_TRUE(S_ISDIR(st("w").st_mode));
  EXPECT_TRUE(S_ISLNK(st("hl2").st_mode));
  expectOutsideUntouched();
  struct stat pw;
  ASSERT_EQ(::stat("/etc/passwd", &pw), 0);
  EXPECT_EQ(pw.st_mode & 07777, 0644u);

  // Hardlink targets are resolved inside dest too.
  TarBuilder hl;
  hl.symlink("o", outside_).hardlink("stolen", "o/victim");
  EXPECT_FALSE(apply(hl.finish()).ok());
  EXPECT_FALSE(exists("stolen"));
  EXPECT_EQ(::lstat((outside_ + "/victim").c_str(), &pw), 0);
  EXPECT_EQ(pw.st_nlink, 1u);
}

TEST_F(LayerApplyTest, InPlaceDeletionsThroughSymlinksStayInside) {
  TarBuilder lower;
  lower.symlink("l", outside_);
  ASSERT_OK(apply(lower.finish(), WhiteoutMode::kApplyInPlace));
  TarBuilder upper;
  upper.file("l/.wh.victim", "").file("l/.wh..wh..opq", "");
  auto r = apply(upper.finish(), WhiteoutMode::kApplyInPlace);
  EXPECT_TRUE(r.ok()) << r.error().message;  // nothing to delete inside dest
  expectOutsideUntouched();
  EXPECT_TRUE(S_ISLNK(st("l").st_mode));
}

TEST_F(LayerApplyTest, HardlinkToAMissingTargetFailsClearly) {
  TarBuilder b;
  b.hardlink("h", "not/yet");
  auto r = apply(b.finish());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("entry 'h'"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("not/yet"), std::string::npos) << r.error().message;
}

TEST_F(LayerApplyTest, XattrsTheFilesystemRefusesFailClearly) {
  TarBuilder b;
  b.add({.path = "f", .content = "x", .xattrs = {{"bogus.namespace", "v"}}});
  auto r = apply(b.finish());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("bogus.namespace"), std::string::npos) << r.error().message;
}

}  // namespace
}  // namespace offcore
