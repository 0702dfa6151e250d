#include "image/tar_reader.h"

#include <archive.h>
#include <archive_entry.h>
#include <locale.h>
#include <sys/stat.h>

#include <algorithm>
#include <limits>
#include <string_view>

namespace offcore {
namespace {

// pax headers carry paths, link targets and user names in UTF-8, and
// libarchive converts them to the *current locale's* charset. Under the "C"
// locale that a daemon usually runs in, any non-ASCII name then fails to
// convert (ARCHIVE_WARN, '?' substitutions). Switching this thread (not the
// process: uselocale, not setlocale) to C.UTF-8 around header reads makes the
// conversion the identity, so names keep the exact bytes containerd sees.
class Utf8LocaleScope {
 public:
  Utf8LocaleScope() {
    static const locale_t utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(0));
    if (utf8 != static_cast<locale_t>(0)) old_ = uselocale(utf8);
  }
  ~Utf8LocaleScope() {
    if (old_ != static_cast<locale_t>(0)) uselocale(old_);
  }
  Utf8LocaleScope(const Utf8LocaleScope&) = delete;
  Utf8LocaleScope& operator=(const Utf8LocaleScope&) = delete;

 private:
  locale_t old_ = static_cast<locale_t>(0);
};

// The decompressing half: only the filters OCI layers use, and the "raw"
// format that hands out the decompressed stream as one entry. "empty"
// accepts a zero-byte blob as a layer without entries.
struct archive* newStreamReader() {
  struct archive* a = archive_read_new();
  if (a == nullptr) return nullptr;
  archive_read_support_filter_gzip(a);
  archive_read_support_filter_zstd(a);
  archive_read_support_format_raw(a);
  archive_read_support_format_empty(a);
  return a;
}

// The tar half, fed the decompressed stream. Every other libarchive format
// (zip, cpio, iso, raw...) stays off: a layer that is not a tar must be
// rejected, not interpreted.
struct archive* newTarReader() {
  struct archive* a = archive_read_new();
  if (a == nullptr) return nullptr;
  archive_read_support_format_tar(a);
  archive_read_support_format_empty(a);
  return a;
}

constexpr size_t kStreamBuffer = 64 * 1024;

}  // namespace

const char* tarEntryTypeName(TarEntryType type) {
  switch (type) {
    case TarEntryType::kFile: return "file";
    case TarEntryType::kDir: return "directory";
    case TarEntryType::kSymlink: return "symlink";
    case TarEntryType::kHardlink: return "hardlink";
    case TarEntryType::kChar: return "char device";
    case TarEntryType::kBlock: return "block device";
    case TarEntryType::kFifo: return "fifo";
  }
  return "?";
}

Result<std::string> sanitizeTarPath(const std::string& raw) {
  if (raw.empty()) return makeError("empty path in tar header", EINVAL);
  if (raw.find('\0') != std::string::npos)
    return makeError("path contains NUL: '" + raw.substr(0, raw.find('\0')) + "'", EINVAL);
  // Same normalization as containerd's filepath.Clean of the header name,
  // except that ".." is an error rather than being clamped at the root.
  std::string out;
  size_t i = 0;
  while (i <= raw.size()) {
    size_t j = raw.find('/', i);
    if (j == std::string::npos) j = raw.size();
    std::string_view comp(raw.data() + i, j - i);
    if (comp == "..") return makeError("path escapes the layer root: '" + raw + "'", EINVAL);
    if (!comp.empty() && comp != ".") {
      if (!out.empty()) out += '/';
      out.append(comp);
    }
    i = j + 1;
  }
  if (out.empty()) return std::string(".");
  return out;
}

Result<std::unique_ptr<TarReader>> TarReader::openFile(const std::string& path, const LayerBounds& bounds,
                                                       const std::string& layer) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return errnoError("layer blob " + path + ": cannot open");
  ExpansionLimit limit(bounds, static_cast<uint64_t>(st.st_size), layer.empty() ? path : layer);
  std::unique_ptr<TarReader> r(new TarReader(path, std::move(limit)));
  r->raw_ = newStreamReader();
  if (r->raw_ == nullptr) return makeError("libarchive: out of memory", ENOMEM);
  if (archive_read_open_filename(r->raw_, path.c_str(), 64 * 1024) != ARCHIVE_OK)
    return r->archiveError("layer blob " + r->name_ + ": cannot open (want tar, tar+gzip or tar+zstd)");
  OC_TRY(r->openTar());
  return r;
}

Result<std::unique_ptr<TarReader>> TarReader::openMemory(const void* data, size_t len, const LayerBounds& bounds,
                                                         const std::string& layer) {
  ExpansionLimit limit(bounds, len, layer.empty() ? "<memory>" : layer);
  std::unique_ptr<TarReader> r(new TarReader("<memory>", std::move(limit)));
  r->raw_ = newStreamReader();
  if (r->raw_ == nullptr) return makeError("libarchive: out of memory", ENOMEM);
  if (archive_read_open_memory(r->raw_, data, len) != ARCHIVE_OK)
    return r->archiveError("layer blob " + r->name_ + ": cannot open (want tar, tar+gzip or tar+zstd)");
  OC_TRY(r->openTar());
  return r;
}

Status TarReader::openTar() {
  struct archive_entry* whole = nullptr;
  int rc = archive_read_next_header(raw_, &whole);
  if (rc == ARCHIVE_EOF)
    raw_eof_ = true;  // an empty blob
  else if (rc != ARCHIVE_OK)
    return archiveError("layer blob " + name_ + ": cannot decompress");
  buf_.resize(kStreamBuffer);
  a_ = newTarReader();
  if (a_ == nullptr) return makeError("libarchive: out of memory", ENOMEM);
  if (archive_read_open(a_, this, nullptr, &TarReader::readStream, nullptr) != ARCHIVE_OK)
    return archiveError("layer blob " + name_ + ": cannot open (want tar, tar+gzip or tar+zstd)");
  return okStatus();
}

ssize_t TarReader::readStream(struct archive* a, void* self, const void** buf) {
  auto* r = static_cast<TarReader*>(self);
  if (r->raw_eof_ || r->bound_error_) return 0;
  la_ssize_t n = archive_read_data(r->raw_, r->buf_.data(), r->buf_.size());
  if (n < 0) {
    const char* msg = archive_error_string(r->raw_);
    int code = archive_errno(r->raw_);
    archive_set_error(a, code > 0 ? code : EINVAL, "cannot decompress: %s", msg != nullptr ? msg : "corrupt stream");
    return -1;
  }
  if (n == 0) r->raw_eof_ = true;
  r->streamed_ = addSaturating(r->streamed_, static_cast<uint64_t>(n));
  if (r->limit_.exceeded(r->streamed_)) {
    r->bound_error_ = r->limit_.error(r->streamed_, "the decompressed tar stream");
    archive_set_error(a, EFBIG, "%s", r->bound_error_->message.c_str());
    return -1;
  }
  *buf = r->buf_.data();
  return n;
}

TarReader::~TarReader() {
  if (a_ != nullptr) archive_read_free(a_);
  if (raw_ != nullptr) archive_read_free(raw_);
}

Error TarReader::archiveError(const std::string& what) const {
  // A bound error is the cause whatever libarchive made of the short read.
  if (bound_error_) return *bound_error_;
  struct archive* a = a_ != nullptr ? a_ : raw_;
  const char* msg = archive_error_string(a);
  int code = archive_errno(a);
  return makeError(what + ": " + (msg != nullptr ? msg : "malformed archive"), code > 0 ? code : EINVAL);
}

Result<bool> TarReader::next(TarEntry& entry) {
  Utf8LocaleScope utf8;
  struct archive_entry* e = nullptr;
  std::string previous = current_;
  int rc = archive_read_next_header(a_, &e);
  if (rc == ARCHIVE_EOF) return false;
  // ARCHIVE_WARN is not accepted either: it means libarchive repaired or
  // dropped something (a malformed pax record, an unconvertible name), and a
  // layer must unpack exactly as written or not at all.
  if (rc != ARCHIVE_OK) {
    if (bound_error_) return *bound_error_;
    const char* name = e != nullptr ? archive_entry_pathname(e) : nullptr;
    std::string where = name != nullptr && *name != '\0' ? "entry '" + std::string(name) + "'"
                        : previous.empty()               ? std::string("first entry")
                                                         : "entry after '" + previous + "'";
    return archiveError(where + ": malformed tar header");
  }
  const char* raw = archive_entry_pathname(e);
  current_ = raw != nullptr ? raw : "";
  auto fail = [&](const std::string& what) { return makeError("entry '" + current_ + "': " + what, EINVAL); };
  if (raw == nullptr) return fail("no path (after '" + previous + "')");
  auto path = sanitizeTarPath(raw);
  if (!path.ok()) return fail(path.error().message);

  entry = TarEntry{};
  entry.path = std::move(*path);
  const char* hardlink = archive_entry_hardlink(e);
  if (hardlink != nullptr) {
    entry.type = TarEntryType::kHardlink;
    auto target = sanitizeTarPath(hardlink);
    if (!target.ok()) return fail("hardlink target: " + target.error().message);
    if (*target == ".") return fail("hardlink to the layer root");
    entry.link_target = std::move(*target);
  } else {
    switch (archive_entry_filetype(e)) {
      case AE_IFREG: entry.type = TarEntryType::kFile; break;
      case AE_IFDIR: entry.type = TarEntryType::kDir; break;
      case AE_IFLNK: {
        entry.type = TarEntryType::kSymlink;
        const char* target = archive_entry_symlink(e);
        if (target == nullptr || *target == '\0') return fail("symlink without a target");
        entry.link_target = target;
        break;
      }
      case AE_IFCHR: entry.type = TarEntryType::kChar; break;
      case AE_IFBLK: entry.type = TarEntryType::kBlock; break;
      case AE_IFIFO: entry.type = TarEntryType::kFifo; break;
      case AE_IFSOCK: return fail("sockets cannot be unpacked from a layer; rebuild the image without it");
      default: return fail("unknown entry type; the layer is corrupt or uses an unsupported tar extension");
    }
  }
  if (entry.path == "." && entry.type != TarEntryType::kDir)
    return fail(std::string("the layer root must be a directory, not a ") + tarEntryTypeName(entry.type));

  entry.mode = static_cast<uint32_t>(archive_entry_perm(e)) & 07777;
  int64_t uid = archive_entry_uid(e), gid = archive_entry_gid(e);
  // 2^32-1 is chown's "leave unchanged", never a real owner.
  constexpr int64_t kMaxId = std::numeric_limits<uint32_t>::max() - 1;
  if (uid < 0 || uid > kMaxId || gid < 0 || gid > kMaxId) return fail("uid/gid out of range");
  entry.uid = static_cast<uint32_t>(uid);
  entry.gid = static_cast<uint32_t>(gid);
  entry.mtime_sec = archive_entry_mtime(e);
  entry.mtime_nsec = static_cast<int32_t>(archive_entry_mtime_nsec(e));
  if (archive_entry_atime_is_set(e)) {
    entry.has_atime = true;
    entry.atime_sec = archive_entry_atime(e);
    entry.atime_nsec = static_cast<int32_t>(archive_entry_atime_nsec(e));
  }
  int64_t size = archive_entry_size(e);
  if (size < 0) return fail("negative size");
  entry.size = static_cast<uint64_t>(size);
  // Apparent size, before any of the body is read: a sparse file counts whole.
  if (entry.type == TarEntryType::kFile) {
    declared_ = addSaturating(declared_, entry.size);
    if (limit_.exceeded(declared_))
      return limit_.error(declared_, "declared file sizes (up to entry '" + entry.path + "')");
  }
  entry.rdev_major = static_cast<uint32_t>(archive_entry_rdevmajor(e));
  entry.rdev_minor = static_cast<uint32_t>(archive_entry_rdevminor(e));

  if (archive_entry_xattr_reset(e) > 0) {
    const char* name = nullptr;
    const void* value = nullptr;
    size_t len = 0;
    while (archive_entry_xattr_next(e, &name, &value, &len) == ARCHIVE_OK) {
      if (name == nullptr || *name == '\0') return fail("xattr with an empty name");
      std::string v(static_cast<const char*>(value), value != nullptr ? len : 0);
      // libarchive's own writer stores each xattr twice (LIBARCHIVE.xattr.*
      // and SCHILY.xattr.*) and its reader reports both: keep one, the last.
      auto same =
          std::find_if(entry.xattrs.begin(), entry.xattrs.end(), [&](const auto& x) { return x.first == name; });
      if (same != entry.xattrs.end())
        same->second = std::move(v);
      else
        entry.xattrs.emplace_back(name, std::move(v));
    }
  }
  body_size_ = entry.size;
  return true;
}

Status TarReader::readBody(const std::function<Status(uint64_t, const void*, size_t)>& sink) {
  uint64_t end = 0;
  for (;;) {
    const void* buf = nullptr;
    size_t len = 0;
    la_int64_t offset = 0;
    int rc = archive_read_data_block(a_, &buf, &len, &offset);
    if (rc == ARCHIVE_EOF) return okStatus();
    if (rc != ARCHIVE_OK) return archiveError("cannot read file data");
    // libarchive already bounds these for tar; re-check so a sink can trust
    // them for pwrite offsets.
    if (offset < 0 || static_cast<uint64_t>(offset) < end || len > body_size_ ||
        static_cast<uint64_t>(offset) > body_size_ - len)
      return archiveError("file data block outside the entry's size");
    end = static_cast<uint64_t>(offset) + len;
    if (len > 0) OC_TRY(sink(end - len, buf, len));
  }
}

}  // namespace offcore
