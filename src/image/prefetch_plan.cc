#include "image/prefetch_plan.h"

#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <linux/openat2.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <dirent.h>
#include <fnmatch.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <deque>
#include <optional>
#include <set>

#include "base/files.h"
#include "base/strings.h"
#include "image/elf_deps.h"

namespace offcore {

namespace {

constexpr size_t kMaxFiles = 512;      // libraries of one program, transitively
constexpr int kMaxScriptDepth = 4;     // #! chains
constexpr int kMaxConfIncludes = 64;   // ld.so.conf include files
constexpr uint64_t kInodeBytes = 256;  // an EROFS inode with its inline xattrs
constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  bool ok() const { return fd_ >= 0; }

 private:
  int fd_;
};

int openat2Fd(int dirfd, const std::string& path, uint64_t flags, uint64_t resolve) {
  open_how how{};
  how.flags = flags | O_CLOEXEC;
  how.resolve = resolve;
  std::string rel = path;
  while (!rel.empty() && rel[0] == '/') rel.erase(0, 1);
  if (rel.empty()) rel = ".";
  return static_cast<int>(::syscall(SYS_openat2, dirfd, rel.c_str(), &how, sizeof how));
}

std::string dirOf(const std::string& p) {
  auto slash = p.rfind('/');
  return slash == 0 || slash == std::string::npos ? "/" : p.substr(0, slash);
}

std::string join(const std::string& dir, const std::string& name) { return dir == "/" ? "/" + name : dir + "/" + name; }

// The Debian multiarch directory name of a machine (e_machine).
std::string triplet(uint16_t machine, bool is64) {
  switch (machine) {
    case 62: return "x86_64-linux-gnu";
    case 3: return "i386-linux-gnu";
    case 183: return "aarch64-linux-gnu";
    case 40: return "arm-linux-gnueabihf";
    case 243: return is64 ? "riscv64-linux-gnu" : "";
    case 21: return "powerpc64le-linux-gnu";
    case 22: return "s390x-linux-gnu";
    default: return "";
  }
}

// One image root: resolution confined to it.
class ImageRoot {
 public:
  // The root is kept canonical: resolved paths are compared with it.
  explicit ImageRoot(const std::string& root)
      : root_(canonical(root)), fd_(::open(root_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC)) {}
  bool ok() const { return fd_.ok(); }

  // The path with every symlink followed (inside the root), or "" when it
  // does not name a regular file.
  std::string resolveFile(const std::string& path) const {
    Fd f(openat2Fd(fd_.get(), path, O_PATH, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS));
    if (!f.ok()) return "";
    struct stat st {};
    if (::fstat(f.get(), &st) != 0 || !S_ISREG(st.st_mode)) return "";
    char buf[4096];
    ssize_t n = ::readlink(("/proc/self/fd/" + std::to_string(f.get())).c_str(), buf, sizeof buf - 1);
    if (n <= 0) return "";
    std::string full(buf, static_cast<size_t>(n));
    if (root_ == "/") return full;
    if (full.compare(0, root_.size(), root_) != 0 || (full.size() > root_.size() && full[root_.size()] != '/')) {
      return "";
    }
    std::string in = full.substr(root_.size());
    return in.empty() ? "/" : in;
  }

  bool executable(const std::string& path) const {
    Fd f(openat2Fd(fd_.get(), path, O_PATH, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS));
    struct stat st {};
    return f.ok() && ::fstat(f.get(), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111);
  }

  // A regular file, opened for reading inside the root.
  Result<Fd> open(const std::string& path) const {
    Fd f(openat2Fd(fd_.get(), path, O_RDONLY | O_NOCTTY | O_NONBLOCK, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS));
    if (!f.ok()) return errnoError("open " + path + " in the image");
    struct stat st {};
    if (::fstat(f.get(), &st) != 0 || !S_ISREG(st.st_mode)) return makeError(path + " is not a regular file");
    return f;
  }

  std::string head(const std::string& path, size_t n) const {
    auto f = open(path);
    if (!f.ok()) return "";
    std::string out(n, '\0');
    ssize_t got = ::pread(f->get(), out.data(), n, 0);
    out.resize(got > 0 ? static_cast<size_t>(got) : 0);
    return out;
  }

  Result<ElfDeps> elf(const std::string& path) const {
    OC_ASSIGN_OR_RETURN(Fd f, open(path));
    struct stat st {};
    if (::fstat(f.get(), &st) != 0) return errnoError("stat " + path);
    int fd = f.get();
    auto read = [fd](uint64_t off, size_t len) -> Result<std::string> {
      std::string out(len, '\0');
      ssize_t got = ::pread(fd, out.data(), len, static_cast<off_t>(off));
      if (got < 0) return errnoError("read");
      out.resize(static_cast<size_t>(got));
      return out;
    };
    return parseElfDeps(read, static_cast<uint64_t>(st.st_size));
  }

  std::vector<std::string> listDir(const std::string& dir) const {
    std::vector<std::string> out;
    int fd = openat2Fd(fd_.get(), dir, O_RDONLY | O_DIRECTORY, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
    if (fd < 0) return out;
    DIR* d = ::fdopendir(fd);
    if (!d) {
      ::close(fd);
      return out;
    }
    while (auto* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") out.push_back(n);
    }
    ::closedir(d);
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  static std::string canonical(const std::string& r) {
    char buf[PATH_MAX];
    return ::realpath(r.c_str(), buf) ? std::string(buf) : r;
  }
  std::string root_;
  Fd fd_;
};

class StartFinder {
 public:
  StartFinder(const ImageRoot& root, const StartSpec& spec) : root_(root), spec_(spec) {
    for (const auto& e : spec.env) {
      if (e.rfind("PATH=", 0) == 0) path_ = e.substr(5);
      if (e.rfind("LD_LIBRARY_PATH=", 0) == 0) ld_library_path_ = splitFields(e.substr(16), ':');
    }
  }

  StartFiles run() {
    std::vector<std::string> argv = spec_.entrypoint;
    argv.insert(argv.end(), spec_.cmd.begin(), spec_.cmd.end());
    if (argv.empty()) {
      out_.note = "the image config names no entrypoint or cmd";
      return out_;
    }
    program(argv, 0);
    return out_;
  }

 private:
  // argv[0] found like execvp would: with a '/', from the working dir.
  std::string findProgram(const std::string& name) const {
    if (name.find('/') != std::string::npos) {
      std::string p = name[0] == '/' ? name : join(spec_.working_dir.empty() ? "/" : spec_.working_dir, name);
      return root_.resolveFile(p);
    }
    for (const auto& dir : splitFields(path_, ':')) {
      std::string cand = join(dir, name);
      if (root_.executable(cand)) return root_.resolveFile(cand);
    }
    return "";
  }

  bool add(const std::string& path) {
    if (seen_.count(path) || out_.files.size() >= kMaxFiles) return false;
    seen_.insert(path);
    out_.files.push_back(path);
    return true;
  }

  void note(const std::string& n) {
    if (out_.note.empty()) out_.note = n;
  }

  void program(const std::vector<std::string>& argv, int depth) {
    std::string path = findProgram(argv[0]);
    if (path.empty()) {
      note(argv[0] + " is not in the image (PATH " + path_ + ")");
      return;
    }
    if (!add(path)) return;
    std::string head = root_.head(path, 256);
    if (looksLikeElf(head)) {
      elfClosure(path);
    } else if (auto she = parseShebang(head); !she.empty() && depth < kMaxScriptDepth) {
      std::vector<std::string> next{she[0]};
      // `#!/usr/bin/env [-S] prog args`: env runs first, then prog.
      if (she.size() > 1) {
        auto words = splitFields(she[1], ' ');
        if (!words.empty() && words[0] == "-S") words.erase(words.begin());
        program(next, depth + 1);
        if (she[0].size() >= 4 && she[0].compare(she[0].size() - 4, 4, "/env") == 0 && !words.empty()) {
          program({words[0]}, depth + 1);
        }
        return;
      }
      program(next, depth + 1);
      return;
    }
    // `sh -c "prog args"` (a Dockerfile's shell form): the shell, then prog.
    std::string base = argv[0].substr(argv[0].rfind('/') + 1);
    if ((base == "sh" || base == "bash" || base == "dash" || base == "ash") && argv.size() >= 3 && argv[1] == "-c" &&
        depth < kMaxScriptDepth) {
      for (const auto& w : splitFields(argv[2], ' ')) {
        if (w == "exec" || w.find('=') != std::string::npos) continue;
        if (w.find_first_of("$`;&|<>(){}") != std::string::npos) break;
        program({w}, depth + 1);
        break;
      }
    }
  }

  std::vector<std::string> searchDirs(const ElfDeps& obj, const std::string& obj_path, bool musl) const {
    std::vector<std::string> dirs;
    auto expand = [&](const std::string& d) {
      std::string out;
      for (size_t i = 0; i < d.size(); ++i) {
        if (d.compare(i, 7, "$ORIGIN") == 0 || d.compare(i, 9, "${ORIGIN}") == 0) {
          out += dirOf(obj_path);
          i += d[i + 1] == '{' ? 8 : 6;
        } else if (d.compare(i, 4, "$LIB") == 0 || d.compare(i, 6, "${LIB}") == 0) {
          out += obj.is64 ? "lib64" : "lib";
          i += d[i + 1] == '{' ? 5 : 3;
        } else {
          out += d[i];
        }
      }
      return out;
    };
    if (obj.runpath.empty()) {
      for (const auto& d : obj.rpath) dirs.push_back(expand(d));
      if (exe_ && exe_->runpath.empty() && &obj != &*exe_) {
        for (const auto& d : exe_->rpath) dirs.push_back(expand(d));
      }
    }
    for (const auto& d : ld_library_path_) dirs.push_back(d);
    for (const auto& d : obj.runpath) dirs.push_back(expand(d));
    if (musl) {
      auto p = musl_path_;
      dirs.insert(dirs.end(), p.begin(), p.end());
      return dirs;
    }
    dirs.insert(dirs.end(), conf_dirs_.begin(), conf_dirs_.end());
    std::string t = triplet(obj.machine, obj.is64);
    if (!t.empty()) {
      dirs.push_back("/lib/" + t);
      dirs.push_back("/usr/lib/" + t);
    }
    if (obj.is64) {
      dirs.push_back("/lib64");
      dirs.push_back("/usr/lib64");
    }
    dirs.push_back("/lib");
    dirs.push_back("/usr/lib");
    return dirs;
  }

  // /etc/ld.so.conf: directories, `include GLOB` (relative to /etc).
  void readConf(const std::string& path, int& budget) {
    if (--budget < 0) return;
    std::string text = root_.head(path, 64 * 1024);
    for (auto line : splitFields(text, '\n')) {
      line = line.substr(0, line.find('#'));
      auto words = splitFields(trim(line), ' ');
      if (words.empty()) continue;
      if (words[0] == "include" && words.size() >= 2) {
        for (size_t w = 1; w < words.size(); ++w) {
          std::string pat = words[w][0] == '/' ? words[w] : join(dirOf(path), words[w]);
          std::string dir = dirOf(pat), glob = pat.substr(pat.rfind('/') + 1);
          for (const auto& name : root_.listDir(dir)) {
            if (::fnmatch(glob.c_str(), name.c_str(), 0) == 0) readConf(join(dir, name), budget);
          }
        }
      } else if (words[0][0] == '/') {
        conf_dirs_.push_back(words[0]);
      }
    }
  }

  void elfClosure(const std::string& exe_path) {
    auto exe = root_.elf(exe_path);
    if (!exe.ok()) {
      note(exe_path + ": " + exe.error().message);
      return;
    }
    exe_ = *exe;
    if (exe->interp.empty()) return;  // static
    std::string interp = root_.resolveFile(exe->interp);
    if (interp.empty()) {
      note("the interpreter " + exe->interp + " of " + exe_path + " is not in the image");
      return;
    }
    add(interp);
    bool musl = exe->interp.find("ld-musl") != std::string::npos;
    if (musl) {
      std::string arch = exe->interp.substr(exe->interp.find("ld-musl-") + 8);
      arch = arch.substr(0, arch.find(".so"));
      std::string path_file = root_.resolveFile("/etc/ld-musl-" + arch + ".path");
      if (!path_file.empty()) {
        std::string text = root_.head(path_file, 16 * 1024);
        for (auto& w : splitFields(text, '\n'))
          for (auto& d : splitFields(w, ':')) musl_path_.push_back(trim(d));
      } else {
        musl_path_ = {"/lib", "/usr/local/lib", "/usr/lib"};
      }
    } else {
      int budget = kMaxConfIncludes;
      readConf("/etc/ld.so.conf", budget);
      std::string cache = root_.resolveFile("/etc/ld.so.cache");
      if (!cache.empty()) out_.loader_files.push_back(cache);
    }
    loadTree(exe_path, *exe, interp, musl);
    jdkLauncher(exe_path, interp, musl);
  }

  // Breadth first from one object, like ld.so; a name loads once.
  void loadTree(const std::string& top, const ElfDeps& top_deps, const std::string& interp, bool musl) {
    std::deque<std::pair<std::string, ElfDeps>> queue{{top, top_deps}};
    while (!queue.empty()) {
      auto [path, obj] = std::move(queue.front());
      queue.pop_front();
      for (const auto& name : obj.needed) {
        if (!names_.insert(name).second) continue;
        std::string found;
        ElfDeps deps;
        auto tryPath = [&](const std::string& cand) {
          std::string r = root_.resolveFile(cand);
          if (r.empty()) return false;
          auto d = root_.elf(r);
          // ld.so skips a file of another class or machine and searches on.
          if (!d.ok() || d->is64 != exe_->is64 || d->machine != exe_->machine) return false;
          found = r;
          deps = *d;
          return true;
        };
        if (name.find('/') != std::string::npos) {
          tryPath(name);
        } else {
          for (const auto& dir : searchDirs(obj, path, musl)) {
            if (tryPath(join(dir, name))) break;
          }
        }
        if (found.empty()) {
          note(name + " (needed by " + path + ") is not in the image");
          continue;
        }
        if (found == interp) continue;  // musl: libc is the loader
        if (add(found)) queue.emplace_back(found, deps);
      }
    }
  }

  // The JDK's launcher (bin/java) loads its VM by the JDK's layout, not by
  // DT_NEEDED: lib/jvm.cfg names the VM (its first "-NAME KNOWN" line), the
  // launcher dlopen()s lib/NAME/libjvm.so, and the VM maps its class-data
  // archive lib/NAME/classes.jsa. A program with no lib/jvm.cfg beside its
  // bin/ is left alone.
  void jdkLauncher(const std::string& exe_path, const std::string& interp, bool musl) {
    const std::string home = dirOf(dirOf(exe_path));
    const std::string cfg = root_.resolveFile(join(home, "lib/jvm.cfg"));
    if (cfg.empty()) return;
    std::string text = root_.head(cfg, 16 * 1024), vm;
    for (const auto& line : splitFields(text, '\n')) {
      auto words = splitFields(trim(line.substr(0, line.find('#'))), ' ');
      if (words.size() >= 2 && words[0].size() > 1 && words[0][0] == '-' && words[1] == "KNOWN") {
        vm = words[0].substr(1);
        break;
      }
    }
    if (vm.empty() || vm.find('/') != std::string::npos || vm == "..") return;
    std::string lib = root_.resolveFile(join(home, "lib/" + vm + "/libjvm.so"));
    auto deps = lib.empty() ? Result<ElfDeps>(makeError("")) : root_.elf(lib);
    if (!deps.ok() || deps->is64 != exe_->is64 || deps->machine != exe_->machine) {
      note(exe_path + " is a JDK launcher, but " + home + "/lib/" + vm + "/libjvm.so is not a usable library");
      return;
    }
    out_.loader_files.push_back(cfg);
    if (add(lib)) loadTree(lib, *deps, interp, musl);
    if (std::string jsa = root_.resolveFile(join(home, "lib/" + vm + "/classes.jsa")); !jsa.empty()) {
      out_.loader_files.push_back(jsa);
    }
  }

  const ImageRoot& root_;
  const StartSpec& spec_;
  std::string path_ = kDefaultPath;
  std::vector<std::string> ld_library_path_, conf_dirs_, musl_path_;
  std::optional<ElfDeps> exe_;
  std::set<std::string> seen_;
  std::set<std::string> names_;  // DT_NEEDED names loaded so far
  StartFiles out_;
};

// FIEMAP: the byte ranges of the image that hold an open file's data.
ByteRanges extents(int fd) {
  ByteRanges out;
  constexpr unsigned kBatch = 64;
  std::vector<char> buf(sizeof(fiemap) + kBatch * sizeof(fiemap_extent));
  uint64_t start = 0;
  for (int rounds = 0; rounds < 1024; ++rounds) {
    std::fill(buf.begin(), buf.end(), 0);
    auto* fm = reinterpret_cast<fiemap*>(buf.data());
    fm->fm_start = start;
    fm->fm_length = FIEMAP_MAX_OFFSET - start;
    fm->fm_extent_count = kBatch;
    if (::ioctl(fd, FS_IOC_FIEMAP, fm) != 0 || fm->fm_mapped_extents == 0) break;
    bool last = false;
    for (unsigned i = 0; i < fm->fm_mapped_extents; ++i) {
      const fiemap_extent& e = fm->fm_extents[i];
      if (!(e.fe_flags & (FIEMAP_EXTENT_UNKNOWN | FIEMAP_EXTENT_UNWRITTEN)) && e.fe_length) {
        out.emplace_back(e.fe_physical, e.fe_length);
      }
      start = e.fe_logical + e.fe_length;
      last = last || (e.fe_flags & FIEMAP_EXTENT_LAST);
    }
    if (last) break;
  }
  return out;
}

}  // namespace

Result<StartFiles> findStartFiles(const std::string& root, const StartSpec& spec) {
  ImageRoot r(root);
  if (!r.ok()) return errnoError("open image root " + root);
  return StartFinder(r, spec).run();
}

Result<uint64_t> erofsInodeBase(const std::string& image_file) {
  int fd = ::open(image_file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errnoError("open " + image_file);
  unsigned char sb[128] = {};
  ssize_t n = ::pread(fd, sb, sizeof sb, 1024);
  ::close(fd);
  auto le32 = [&](size_t o) {
    return uint32_t{sb[o]} | uint32_t{sb[o + 1]} << 8 | uint32_t{sb[o + 2]} << 16 | uint32_t{sb[o + 3]} << 24;
  };
  if (n != sizeof sb || le32(0) != 0xE0F5E1E2u) return makeError(image_file + " is not an EROFS image");
  unsigned bits = sb[12];
  if (bits < 9 || bits > 16) return makeError(image_file + ": bad EROFS block size");
  return uint64_t{le32(40)} << bits;
}

Result<PrefetchPlan> planPrefetch(const std::vector<PlanLayer>& layer_in, const std::string& root,
                                  const StartSpec& spec) {
  PrefetchPlan plan;
  OC_ASSIGN_OR_RETURN(plan.start, findStartFiles(root, spec));
  std::vector<Fd> layers;
  for (const auto& l : layer_in) {
    layers.emplace_back(::open(l.dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!layers.back().ok()) return errnoError("open layer " + l.dir);
  }
  plan.layer_ranges.assign(layers.size(), {});
  for (auto& r : plan.layer_ranges) r.emplace_back(0, 4096);  // the superblock
  std::set<std::pair<size_t, std::string>> dirs_done;
  // An EROFS inode (with its inline data and xattrs) is read before its
  // data; inline data shows in FIEMAP too, the inode of a plain file not.
  auto addRanges = [&](size_t li, int fd) {
    struct stat st {};
    if (layer_in[li].inode_base && ::fstat(fd, &st) == 0) {
      plan.layer_ranges[li].emplace_back(layer_in[li].inode_base + uint64_t{st.st_ino} * 32, kInodeBytes);
    }
    for (const auto& e : extents(fd)) plan.layer_ranges[li].push_back(e);
  };
  std::vector<std::string> all = plan.start.files;
  all.insert(all.end(), plan.start.loader_files.begin(), plan.start.loader_files.end());
  for (const auto& path : all) {
    // The directories a lookup walks: each that exists in a layer is read.
    std::vector<std::string> parts = splitFields(path, '/');
    std::string prefix = "/";
    for (size_t k = 0; k < parts.size(); ++k) {
      for (size_t li = 0; li < layers.size(); ++li) {
        if (!dirs_done.insert({li, prefix}).second) continue;
        Fd dfd(openat2Fd(layers[li].get(), prefix, O_RDONLY | O_DIRECTORY,
                         RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS));
        if (dfd.ok()) addRanges(li, dfd.get());
      }
      if (k + 1 < parts.size()) prefix = join(prefix, parts[k]);
    }
    // The file itself, from the topmost layer that has it.
    for (size_t li = layers.size(); li-- > 0;) {
      Fd f(openat2Fd(layers[li].get(), path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK,
                     RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS));
      if (!f.ok()) continue;
      struct stat st {};
      if (::fstat(f.get(), &st) != 0) continue;
      if (!S_ISREG(st.st_mode)) break;  // a whiteout: it is not from below
      addRanges(li, f.get());
      break;
    }
  }
  return plan;
}

}  // namespace offcore
