#include "image/prefetch_plan.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <fstream>
#include <set>

#include "base/files.h"
#include "base/subprocess.h"
#include "image/elf_deps.h"

namespace offcore {
namespace {

std::string real(const std::string& p) {
  char buf[PATH_MAX];
  return ::realpath(p.c_str(), buf) ? std::string(buf) : std::string();
}

// What the host's own loader loads for a program: ldd's paths, resolved.
std::set<std::string> lddLibraries(const std::string& program) {
  std::set<std::string> out;
  auto r = runCapture({"ldd", program});
  if (!r.ok()) return out;
  for (const auto& line : splitLines(r->out)) {
    auto arrow = line.find("=> /");
    std::string path;
    if (arrow != std::string::npos) {
      path = line.substr(arrow + 3);
    } else if (auto slash = line.find('/'); slash != std::string::npos) {
      path = line.substr(slash);
    }
    path = path.substr(0, path.find(' '));
    if (!path.empty()) out.insert(real(path));
  }
  return out;
}

ElfReadAt bufferReader(const std::string& bytes) {
  return [&bytes](uint64_t off, size_t len) -> Result<std::string> {
    if (off >= bytes.size()) return std::string();
    return bytes.substr(static_cast<size_t>(off), len);
  };
}

TEST(ElfDepsTest, ReadsTheInterpreterAndNeededLibrariesOfARealBinary) {
  auto bytes = readFile("/bin/ls");
  ASSERT_TRUE(bytes.ok());
  auto d = parseElfDeps(bufferReader(*bytes), bytes->size());
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_TRUE(d->is64);
  EXPECT_FALSE(d->interp.empty());
  EXPECT_NE(std::find(d->needed.begin(), d->needed.end(), "libc.so.6"), d->needed.end());
}

TEST(ElfDepsTest, RefusesWhatIsNotAnElfOrPointsOutsideTheFile) {
  std::string junk = "hello world, not an ELF";
  EXPECT_FALSE(parseElfDeps(bufferReader(junk), junk.size()).ok());
  auto bytes = readFile("/bin/ls");
  ASSERT_TRUE(bytes.ok());
  // Program headers past the end of a truncated copy.
  std::string head = bytes->substr(0, 64);
  auto d = parseElfDeps(bufferReader(head), head.size());
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.error().message.find("outside the file"), std::string::npos) << d.error().message;
  // A program header count far beyond any real file.
  std::string many = *bytes;
  many[56] = '\xff';
  many[57] = '\xff';
  EXPECT_FALSE(parseElfDeps(bufferReader(many), many.size()).ok());
}

TEST(ElfDepsTest, ShebangLikeTheKernel) {
  EXPECT_EQ(parseShebang("#!/bin/sh\necho"), (std::vector<std::string>{"/bin/sh"}));
  EXPECT_EQ(parseShebang("#! /usr/bin/env  python3 -u \n"), (std::vector<std::string>{"/usr/bin/env", "python3 -u"}));
  EXPECT_TRUE(parseShebang("#!\n").empty());
  EXPECT_TRUE(parseShebang("echo hi").empty());
  EXPECT_TRUE(parseShebang("").empty());
}

// The host is an image like any other: root "/" and the real loader's answer.
TEST(PrefetchPlanTest, ADynamicBinaryGivesItselfItsLoaderAndWhatLddLoads) {
  StartSpec spec;
  spec.entrypoint = {"curl"};
  spec.cmd = {"--version"};
  spec.env = {"PATH=/usr/local/bin:/usr/bin:/bin"};
  auto s = findStartFiles("/", spec);
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(s->note, "");
  ASSERT_GE(s->files.size(), 3u);
  EXPECT_EQ(s->files[0], real("/usr/bin/curl"));
  std::set<std::string> want = lddLibraries("/usr/bin/curl");
  ASSERT_GE(want.size(), 5u);
  std::set<std::string> got(s->files.begin() + 1, s->files.end());
  EXPECT_EQ(got, want);
  EXPECT_EQ(s->files.size(), want.size() + 1);  // no duplicates
  EXPECT_EQ(s->loader_files, (std::vector<std::string>{real("/etc/ld.so.cache")}));
}

class PrefetchRootTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/oc-prefetch-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
  }
  void TearDown() override { (void)removeTree(root_); }
  void put(const std::string& path, const std::string& text, mode_t mode = 0755) {
    ASSERT_TRUE(makeDirs(root_ + path.substr(0, path.rfind('/'))).ok());
    std::ofstream(root_ + path) << text;
    ::chmod((root_ + path).c_str(), mode);
  }
  std::string root_;
};

TEST_F(PrefetchRootTest, AScriptNamesItsInterpreterThroughEnv) {
  auto env = readFile("/usr/bin/env");
  auto sh = readFile("/bin/sh");
  ASSERT_TRUE(env.ok() && sh.ok());
  put("/usr/bin/env", *env);
  put("/bin/dash", *sh);
  ASSERT_EQ(::symlink("/bin/dash", (root_ + "/bin/sh").c_str()), 0);
  put("/app/run.sh", "#!/usr/bin/env sh\necho hi\n");
  StartSpec spec;
  spec.entrypoint = {"./run.sh"};
  spec.working_dir = "/app";
  auto s = findStartFiles(root_, spec);
  ASSERT_TRUE(s.ok()) << s.error().message;
  // The script, env, then the shell through its symlink; their libraries
  // are missing from this bare root, and the note says so.
  ASSERT_GE(s->files.size(), 3u);
  EXPECT_EQ(s->files[0], "/app/run.sh");
  EXPECT_EQ(s->files[1], "/usr/bin/env");
  EXPECT_NE(std::find(s->files.begin(), s->files.end(), "/bin/dash"), s->files.end());
  EXPECT_NE(s->note.find("is not in the image"), std::string::npos) << s->note;
}

TEST_F(PrefetchRootTest, ResolutionStaysInsideTheImage) {
  // An absolute symlink to a host file: inside the image it names nothing.
  ASSERT_TRUE(makeDirs(root_ + "/bin").ok());
  ASSERT_EQ(::symlink("/usr/bin/curl", (root_ + "/bin/tool").c_str()), 0);
  ASSERT_EQ(::symlink("../../../../../../usr/bin/curl", (root_ + "/bin/up").c_str()), 0);
  for (const char* prog : {"/bin/tool", "/bin/up"}) {
    StartSpec spec;
    spec.entrypoint = {prog};
    auto s = findStartFiles(root_, spec);
    ASSERT_TRUE(s.ok());
    EXPECT_TRUE(s->files.empty()) << s->files[0];
    EXPECT_NE(s->note.find("is not in the image"), std::string::npos);
  }
  // A loop of symlinks is an error of the lookup, not a hang.
  ASSERT_EQ(::symlink("loop2", (root_ + "/bin/loop1").c_str()), 0);
  ASSERT_EQ(::symlink("loop1", (root_ + "/bin/loop2").c_str()), 0);
  StartSpec spec;
  spec.entrypoint = {"/bin/loop1"};
  auto s = findStartFiles(root_, spec);
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->files.empty());
}

// The JDK launcher loads lib/<vm>/libjvm.so by jvm.cfg, not by DT_NEEDED.
TEST_F(PrefetchRootTest, AJdkLauncherNamesItsVm) {
  auto bin = readFile("/usr/bin/env");                           // any dynamic program stands for bin/java
  auto lib = readFile(real("/lib/x86_64-linux-gnu/libc.so.6"));  // any library for libjvm.so
  ASSERT_TRUE(bin.ok() && lib.ok());
  put("/jdk/bin/java", *bin);
  auto ld = readFile(real("/lib64/ld-linux-x86-64.so.2"));
  ASSERT_TRUE(ld.ok());
  put("/lib64/ld-linux-x86-64.so.2", *ld);
  put("/jdk/lib/jvm.cfg", "# comment\n-server KNOWN\n-client IGNORE\n", 0644);
  put("/jdk/lib/server/libjvm.so", *lib, 0644);
  put("/jdk/lib/server/classes.jsa", "cds", 0644);
  StartSpec spec;
  spec.entrypoint = {"/jdk/bin/java", "-version"};
  auto s = findStartFiles(root_, spec);
  ASSERT_TRUE(s.ok());
  EXPECT_NE(std::find(s->files.begin(), s->files.end(), "/jdk/lib/server/libjvm.so"), s->files.end());
  EXPECT_NE(std::find(s->loader_files.begin(), s->loader_files.end(), "/jdk/lib/server/classes.jsa"),
            s->loader_files.end());
  EXPECT_NE(std::find(s->loader_files.begin(), s->loader_files.end(), "/jdk/lib/jvm.cfg"), s->loader_files.end());
  // A VM name that climbs out of lib/ is not followed.
  put("/jdk/lib/jvm.cfg", "-../../etc KNOWN\n", 0644);
  auto bad = findStartFiles(root_, spec);
  ASSERT_TRUE(bad.ok());
  EXPECT_EQ(std::find(bad->files.begin(), bad->files.end(), "/jdk/lib/server/libjvm.so"), bad->files.end());
}

TEST_F(PrefetchRootTest, ShellFormCommandsNameTheirProgram) {
  auto sh = readFile("/bin/sh");
  ASSERT_TRUE(sh.ok());
  put("/bin/sh", *sh);
  put("/usr/bin/app", "#!/bin/sh\n");
  StartSpec spec;
  spec.cmd = {"/bin/sh", "-c", "exec app --serve"};
  spec.env = {"PATH=/usr/bin:/bin"};
  auto s = findStartFiles(root_, spec);
  ASSERT_TRUE(s.ok());
  ASSERT_GE(s->files.size(), 2u);
  EXPECT_EQ(s->files[0], "/bin/sh");
  EXPECT_NE(std::find(s->files.begin(), s->files.end(), "/usr/bin/app"), s->files.end());
  StartSpec none;
  auto e = findStartFiles(root_, none);
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE(e->files.empty());
  EXPECT_EQ(e->note, "the image config names no entrypoint or cmd");
}

}  // namespace
}  // namespace offcore
