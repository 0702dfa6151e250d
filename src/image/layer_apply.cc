#include "image/layer_apply.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "image/tar_reader.h"

#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452  // Linux 6.6; same number on every architecture
#endif

namespace offcore {
namespace {

constexpr std::string_view kWhiteoutPrefix = ".wh.";
constexpr std::string_view kOpaqueMarker = ".wh..wh..opq";

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    std::swap(fd_, o.fd_);
    return *this;
  }
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string baseName(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string dirName(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

int removeAt(int dirfd, const char* name);

// Empties an open directory, never following symlinks. Names are collected
// first: unlinking while readdir walks makes its coverage fs-dependent.
int removeChildren(int fd) {
  DIR* dir = ::fdopendir(::dup(fd));
  if (dir == nullptr) return errno;
  std::vector<std::string> children;
  while (struct dirent* d = ::readdir(dir)) {
    std::string_view n = d->d_name;
    if (n != "." && n != "..") children.emplace_back(n);
  }
  ::closedir(dir);
  for (const auto& c : children)
    if (int err = removeAt(fd, c.c_str()); err != 0 && err != ENOENT) return err;
  return 0;
}

// Removes name under dirfd, recursively, never following symlinks.
int removeAt(int dirfd, const char* name) {
  struct stat st;
  if (::fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return errno;
  if (S_ISDIR(st.st_mode)) {
    Fd fd(::openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (fd.get() < 0) return errno;
    if (int err = removeChildren(fd.get()); err != 0) return err;
  }
  return ::unlinkat(dirfd, name, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) == 0 ? 0 : errno;
}

struct timespec boundTime(int64_t sec, int32_t nsec) {
  // containerd's boundTime: times outside what Go's time.Duration can hold
  // from 1970 (until 2262-04-11 23:47:16.854775807) become the epoch.
  if (sec < 0 || sec > 9223372036 || (sec == 9223372036 && nsec > 854775807) || nsec < 0 || nsec > 999999999)
    return {0, 0};
  return {static_cast<time_t>(sec), nsec};
}

bool allZero(const char* p, size_t n) { return n == 0 || (p[0] == 0 && std::memcmp(p, p + 1, n - 1) == 0); }

Status pwriteAll(int fd, const char* p, size_t len, uint64_t off) {
  while (len > 0) {
    ssize_t n = ::pwrite(fd, p, len, static_cast<off_t>(off));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return errnoError("write");
    p += n, off += static_cast<uint64_t>(n), len -= static_cast<size_t>(n);
  }
  return okStatus();
}

// Writes one data block of a file created empty, leaving out every piece
// (cut at 4 KiB file offsets) that is all zeros: those read back as zeros
// anyway and stay holes, so a tar that stores a sparse file densely (Go's
// archive/tar, hence most layers, never writes sparse entries) still unpacks
// sparse. Returns the bytes written.
Result<uint64_t> writeSkippingZeros(int fd, uint64_t off, const char* p, size_t len) {
  constexpr uint64_t kBlock = 4096;
  uint64_t written = 0;
  size_t run = 0, run_len = 0;
  for (size_t i = 0; i < len;) {
    size_t piece = static_cast<size_t>(std::min<uint64_t>(len - i, kBlock - (off + i) % kBlock));
    if (allZero(p + i, piece)) {
      if (run_len > 0) OC_TRY(pwriteAll(fd, p + run, run_len, off + run));
      written += run_len;
      run_len = 0;
    } else {
      if (run_len == 0) run = i;
      run_len += piece;
    }
    i += piece;
  }
  if (run_len > 0) OC_TRY(pwriteAll(fd, p + run, run_len, off + run));
  return written + run_len;
}

using Opener = std::function<Result<std::unique_ptr<TarReader>>()>;

class Applier {
 public:
  Applier(int root, WhiteoutMode mode) : root_(root), mode_(mode) {}

  Status run(const Opener& open) {
    // In place, deletions come first and see only the lower content: an
    // opaque marker then clears exactly what this layer did not create,
    // wherever it sits in the tar relative to its siblings.
    if (mode_ == WhiteoutMode::kApplyInPlace)
      OC_TRY(forEach(
          open, [&](TarReader&, const TarEntry& e) { return isWhiteout(e.path) ? removeWhitedOut(e) : okStatus(); }));
    OC_TRY(forEach(open, [&](TarReader& r, const TarEntry& e) {
      stats_.entries++;
      return applyEntry(r, e);
    }));
    // After all children are written, or creating them would bump the times.
    for (const auto& d : dirs_) {
      auto parent = openParent(d.path, false);
      if (!parent.ok()) continue;  // replaced later by something else
      struct stat st;
      std::string base = baseName(d.path);
      if (::fstatat(parent->get(), base.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode)) continue;
      if (::utimensat(parent->get(), base.c_str(), d.times, AT_SYMLINK_NOFOLLOW) != 0)
        return errnoError("directory '" + d.path + "': utimensat");
    }
    return okStatus();
  }

  const ApplyStats& stats() const { return stats_; }

 private:
  struct DirTimes {
    std::string path;
    struct timespec times[2];
  };

  static Status forEach(const Opener& open, const std::function<Status(TarReader&, const TarEntry&)>& fn) {
    OC_ASSIGN_OR_RETURN(auto reader, open());
    TarEntry e;
    for (;;) {
      OC_ASSIGN_OR_RETURN(bool more, reader->next(e));
      if (!more) return okStatus();
      Status s = fn(*reader, e);
      if (!s.ok()) return s.error().wrap("entry '" + e.path + "'");
    }
  }

  // ".wh.." and ".wh..." would name the directory itself or its parent,
  // which *at() calls resolve without RESOLVE_IN_ROOT: outside dest at the top.
  static Result<std::string> whitedOutName(const std::string& base) {
    std::string name = base.substr(kWhiteoutPrefix.size());
    if (name.empty() || name == "." || name == "..") return makeError("invalid whiteout '" + base + "'", EINVAL);
    return name;
  }

  static bool isWhiteout(const std::string& path) { return baseName(path).starts_with(kWhiteoutPrefix); }

  Result<Fd> openInRoot(const std::string& rel, uint64_t flags) {
    struct open_how how = {};
    how.flags = flags | O_CLOEXEC;
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    long fd = ::syscall(SYS_openat2, root_, rel.c_str(), &how, sizeof how);
    if (fd < 0) return errnoError("open '" + rel + "' inside the layer root");
    return Fd(static_cast<int>(fd));
  }

  // The directory holding path. With create, missing ancestors are made
  // 0755 as containerd's mkparent does.
  Result<Fd> openParent(const std::string& path, bool create) {
    std::string parent = dirName(path);
    auto fd = openInRoot(parent, O_PATH | O_DIRECTORY);
    if (fd.ok() || !create || fd.error().code != ENOENT) return fd;
    Result<Fd> cur = openInRoot(".", O_PATH | O_DIRECTORY);
    for (size_t i = 1; i <= parent.size() && cur.ok(); i++) {
      if (i != parent.size() && parent[i] != '/') continue;
      std::string prefix = parent.substr(0, i);
      auto next = openInRoot(prefix, O_PATH | O_DIRECTORY);
      if (!next.ok() && next.error().code == ENOENT) {
        std::string name = baseName(prefix);
        if (::mkdirat(cur->get(), name.c_str(), 0755) == 0) {
          // Explicitly, so the result does not depend on the caller's umask.
          if (::fchmodat(cur->get(), name.c_str(), 0755, 0) != 0) return errnoError("chmod '" + prefix + "'");
        } else if (errno != EEXIST) {
          return errnoError("create parent directory '" + prefix + "'");
        }
        // A dangling symlink makes mkdirat fail with EEXIST and the reopen
        // fail again; containerd would create its target, we refuse.
        next = openInRoot(prefix, O_PATH | O_DIRECTORY);
        if (!next.ok())
          return makeError("parent '" + prefix + "' is a symlink to nothing inside the layer root", next.error().code);
      }
      cur = std::move(next);
    }
    return cur;
  }

  Status removeWhitedOut(const TarEntry& e) {
    std::string base = baseName(e.path);
    if (base == kOpaqueMarker) {
      stats_.opaque_dirs++;
      auto dir = openInRoot(dirName(e.path), O_RDONLY | O_DIRECTORY);
      if (!dir.ok()) return dir.error().code == ENOENT ? okStatus() : dir.error();
      if (int err = removeChildren(dir->get()); err != 0)
        return errnoError("opaque directory '" + dirName(e.path) + "': empty it", err);
      return okStatus();
    }
    stats_.whiteouts++;
    OC_ASSIGN_OR_RETURN(std::string name, whitedOutName(base));
    auto parent = openParent(e.path, false);
    if (!parent.ok())
      return parent.error().code == ENOENT || parent.error().code == ENOTDIR ? okStatus() : parent.error();
    if (int err = removeAt(parent->get(), name.c_str()); err != 0 && err != ENOENT)
      return errnoError("whiteout '" + e.path + "': remove", err);
    return okStatus();
  }

  Status overlayWhiteout(const TarEntry& e) {
    std::string base = baseName(e.path);
    OC_ASSIGN_OR_RETURN(Fd parent, openParent(e.path, true));
    if (base == kOpaqueMarker) {
      stats_.opaque_dirs++;
      OC_ASSIGN_OR_RETURN(Fd dir, openInRoot(dirName(e.path), O_RDONLY | O_DIRECTORY));
      if (::fsetxattr(dir.get(), "trusted.overlay.opaque", "y", 1, 0) != 0)
        return errnoError("set trusted.overlay.opaque (needs CAP_SYS_ADMIN and a filesystem with trusted xattrs)");
      return okStatus();
    }
    stats_.whiteouts++;
    OC_ASSIGN_OR_RETURN(std::string name, whitedOutName(base));
    if (int err = removeAt(parent.get(), name.c_str()); err != 0 && err != ENOENT)
      return errnoError("remove '" + name + "' before whiting it out", err);
    // Mode 0 and the whiteout entry's owner, like containerd's OverlayConvertWhiteout.
    if (::mknodat(parent.get(), name.c_str(), S_IFCHR, makedev(0, 0)) != 0) return errnoError("mknod whiteout");
    if (::fchownat(parent.get(), name.c_str(), e.uid, e.gid, AT_SYMLINK_NOFOLLOW) != 0)
      return errnoError("chown whiteout");
    return okStatus();
  }

  Status applyEntry(TarReader& reader, const TarEntry& e) {
    if (e.path == ".") return okStatus();  // containerd ignores the root entry too
    if (isWhiteout(e.path)) return mode_ == WhiteoutMode::kOverlayForm ? overlayWhiteout(e) : okStatus();
    OC_ASSIGN_OR_RETURN(Fd parent, openParent(e.path, true));
    int pfd = parent.get();
    std::string base = baseName(e.path);
    const char* name = base.c_str();
    struct stat st;
    bool exists = ::fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
    // Replace anything but a directory over a directory, which merges.
    if (exists && !(S_ISDIR(st.st_mode) && e.type == TarEntryType::kDir)) {
      if (int err = removeAt(pfd, name); err != 0) return errnoError("remove the existing path", err);
      exists = false;
    }
    switch (e.type) {
      case TarEntryType::kDir:
        stats_.dirs++;
        if (!exists && ::mkdirat(pfd, name, 0700) != 0) return errnoError("mkdir");
        break;
      case TarEntryType::kFile: {
        stats_.files++;
        Fd fd(::openat(pfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
        if (fd.get() < 0) return errnoError("create");
        uint64_t written = 0;
        OC_TRY(reader.readBody([&](uint64_t off, const void* data, size_t len) -> Status {
          OC_ASSIGN_OR_RETURN(uint64_t n, writeSkippingZeros(fd.get(), off, static_cast<const char*>(data), len));
          written += n;
          return okStatus();
        }));
        stats_.bytes += written;
        if (written < e.size) {
          stats_.hole_bytes += e.size - written;
          stats_.sparse_files++;
        }
        // Sparse files end in a hole that no block covers.
        if (::ftruncate(fd.get(), static_cast<off_t>(e.size)) != 0) return errnoError("truncate to size");
        break;
      }
      case TarEntryType::kSymlink:
        stats_.symlinks++;
        if (::symlinkat(e.link_target.c_str(), pfd, name) != 0) return errnoError("symlink");
        break;
      case TarEntryType::kHardlink: {
        stats_.hardlinks++;
        auto tparent = openParent(e.link_target, false);
        if (!tparent.ok()) return tparent.error().wrap("hardlink target '" + e.link_target + "'");
        std::string tbase = baseName(e.link_target);
        // Flags 0: link the target itself even when it is a symlink.
        if (::linkat(tparent->get(), tbase.c_str(), pfd, name, 0) != 0)
          return errnoError("hardlink to '" + e.link_target + "'");
        break;
      }
      case TarEntryType::kChar:
      case TarEntryType::kBlock:
      case TarEntryType::kFifo: {
        stats_.devices++;
        mode_t type = e.type == TarEntryType::kChar ? S_IFCHR : e.type == TarEntryType::kBlock ? S_IFBLK : S_IFIFO;
        if (::mknodat(pfd, name, type | (e.mode & 0777), makedev(e.rdev_major, e.rdev_minor)) != 0)
          return errnoError("mknod");
        break;
      }
    }
    return setMetadata(pfd, name, e);
  }

  // Order matters: chown clears setuid/setgid and security.capability, so
  // owner first, then xattrs, then mode, then times.
  Status setMetadata(int pfd, const char* name, const TarEntry& e) {
    if (::fchownat(pfd, name, e.uid, e.gid, AT_SYMLINK_NOFOLLOW) != 0) return errnoError("lchown");
    if (!e.xattrs.empty()) {
      // The l-variant through the parent's fd: the final component is never
      // followed, and no path string outside our fds is involved.
      std::string at = "/proc/self/fd/" + std::to_string(pfd) + "/" + name;
      for (const auto& [key, value] : e.xattrs)
        if (::lsetxattr(at.c_str(), key.c_str(), value.data(), value.size(), 0) != 0)
          return errnoError("set xattr '" + key + "'");
    }
    struct stat st;
    if (::fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return errnoError("stat");
    if (!S_ISLNK(st.st_mode)) {  // a hardlink may point at a symlink; modes of symlinks are fixed
      if (::syscall(SYS_fchmodat2, pfd, name, e.mode & 07777, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno != ENOSYS || ::fchmodat(pfd, name, e.mode & 07777, 0) != 0) return errnoError("chmod");
      }
    }
    struct timespec mtime = boundTime(e.mtime_sec, e.mtime_nsec);
    struct timespec atime = mtime;
    if (e.has_atime) {
      struct timespec a = boundTime(e.atime_sec, e.atime_nsec);
      if (a.tv_sec > mtime.tv_sec || (a.tv_sec == mtime.tv_sec && a.tv_nsec > mtime.tv_nsec)) atime = a;
    }
    if (e.type == TarEntryType::kDir) {
      dirs_.push_back(DirTimes{e.path, {atime, mtime}});
      return okStatus();
    }
    struct timespec times[2] = {atime, mtime};
    if (::utimensat(pfd, name, times, AT_SYMLINK_NOFOLLOW) != 0) return errnoError("utimensat");
    return okStatus();
  }

  int root_;
  WhiteoutMode mode_;
  ApplyStats stats_;
  std::vector<DirTimes> dirs_;
};

Result<ApplyStats> apply(const std::string& what, const std::string& dest_dir, WhiteoutMode mode, const Opener& open) {
  Fd root(::open(dest_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (root.get() < 0) return errnoError("apply layer " + what + ": destination " + dest_dir);
  Applier applier(root.get(), mode);
  Status s = applier.run(open);
  if (!s.ok()) return s.error().wrap("apply layer " + what + " to " + dest_dir);
  return applier.stats();
}

}  // namespace

Result<ApplyStats> applyLayerFile(const std::string& blob_path, const std::string& dest_dir, WhiteoutMode mode,
                                  const LayerBounds& bounds, const std::string& layer) {
  return apply(blob_path, dest_dir, mode, [&] { return TarReader::openFile(blob_path, bounds, layer); });
}

Result<ApplyStats> applyLayerMemory(const void* data, size_t len, const std::string& dest_dir, WhiteoutMode mode,
                                    const LayerBounds& bounds, const std::string& layer) {
  return apply("<memory>", dest_dir, mode, [&] { return TarReader::openMemory(data, len, bounds, layer); });
}

}  // namespace offcore
