// Reads OCI image layer blobs (tar, tar+gzip, tar+zstd; the compression is
// detected from the content) with Debian's libarchive, and hands out entries
// whose paths are already sanitized: relative, no "..", no NUL. Everything
// here treats the blob as untrusted, including its size: a reader holds the
// layer to LayerBounds (layer_bounds.h) and fails as soon as the declared
// file sizes or the decompressed bytes pass the limit.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/result.h"
#include "image/layer_bounds.h"

struct archive;

namespace offcore {

enum class TarEntryType { kFile, kDir, kSymlink, kHardlink, kChar, kBlock, kFifo };

const char* tarEntryTypeName(TarEntryType type);

struct TarEntry {
  // Relative, '/'-separated, no leading "/" or "./", no "." / ".." / empty
  // components. The layer root itself ("./" in many tars) is ".".
  std::string path;
  TarEntryType type = TarEntryType::kFile;
  uint32_t mode = 0;          // permission bits only: 07777 (incl. setuid/setgid/sticky)
  uint32_t uid = 0, gid = 0;  // numeric; user/group names are ignored on purpose
  int64_t mtime_sec = 0;
  int32_t mtime_nsec = 0;
  bool has_atime = false;
  int64_t atime_sec = 0;
  int32_t atime_nsec = 0;
  uint64_t size = 0;  // logical size; sparse files read fewer bytes
  // Symlink: the link text, verbatim. Hardlink: the sanitized path of the
  // entry it links to.
  std::string link_target;
  uint32_t rdev_major = 0, rdev_minor = 0;
  // Every xattr of the entry (pax SCHILY.xattr.* / LIBARCHIVE.xattr.*), in
  // archive order. Values are binary (security.capability is a struct).
  std::vector<std::pair<std::string, std::string>> xattrs;
};

// Sanitizes a path from a tar header, see TarEntry::path. Rejects "..",
// NUL, and names that are empty after stripping.
Result<std::string> sanitizeTarPath(const std::string& raw);

class TarReader {
 public:
  // bounds are applied against the blob's size (the file's, or len); layer
  // names the blob in bound errors (default: the path, or "<memory>").
  static Result<std::unique_ptr<TarReader>> openFile(const std::string& path, const LayerBounds& bounds = {},
                                                     const std::string& layer = "");
  // The buffer must outlive the reader.
  static Result<std::unique_ptr<TarReader>> openMemory(const void* data, size_t len, const LayerBounds& bounds = {},
                                                       const std::string& layer = "");
  ~TarReader();
  TarReader(const TarReader&) = delete;
  TarReader& operator=(const TarReader&) = delete;

  // Fills entry with the next header. Returns false at the end of the archive.
  // The previous entry's unread body is skipped. A regular file whose size
  // takes the declared total past the limit is an error here, before its body
  // is read.
  Result<bool> next(TarEntry& entry);

  // Streams the current entry's body as (offset, bytes) blocks. Offsets only
  // grow; gaps between blocks are holes of a sparse file. Errors of next()
  // name the entry; errors here do not (the caller knows which it is).
  Status readBody(const std::function<Status(uint64_t offset, const void* data, size_t len)>& sink);

  uint64_t declaredBytes() const { return declared_; }  // sizes of the regular files so far
  uint64_t streamBytes() const { return streamed_; }    // decompressed bytes so far

 private:
  TarReader(std::string name, ExpansionLimit limit) : name_(std::move(name)), limit_(std::move(limit)) {}
  Status openTar();
  static ssize_t readStream(struct archive* a, void* self, const void** buf);
  Error archiveError(const std::string& what) const;

  // Two archives: raw_ only decompresses (gzip, zstd or none, detected) and
  // a_ parses tar from raw_'s output, which readStream counts. So every
  // decompressed byte passes the limit check, whatever libarchive reads it
  // for (bodies, skips, pax headers), and a bomb stops within one buffer.
  struct archive* raw_ = nullptr;
  struct archive* a_ = nullptr;
  std::string name_;     // the blob, for open errors
  std::string current_;  // raw path of the current entry, for errors
  uint64_t body_size_ = 0;
  ExpansionLimit limit_;
  std::vector<char> buf_;
  bool raw_eof_ = false;
  uint64_t streamed_ = 0, declared_ = 0;
  std::optional<Error> bound_error_;  // set by readStream when the stream passes the limit
};

}  // namespace offcore
