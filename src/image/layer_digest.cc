#include "image/layer_digest.h"

#include <archive.h>
#include <sys/stat.h>

#include <memory>
#include <vector>

#include "image/digest.h"

namespace offcore::oci {

Result<TarDigest> uncompressedDigest(const std::string& blob_path, const LayerBounds& bounds,
                                     const std::string& layer) {
  struct stat st {};
  if (::stat(blob_path.c_str(), &st) != 0) return errnoError("open layer " + blob_path);
  ExpansionLimit limit(bounds, static_cast<uint64_t>(st.st_size), layer.empty() ? blob_path : layer);
  // libarchive's "raw" format hands back the decompressed stream as one
  // entry, which is exactly the bytes the diff ID covers.
  std::unique_ptr<archive, int (*)(archive*)> a(archive_read_new(), archive_read_free);
  archive_read_support_filter_gzip(a.get());
  archive_read_support_filter_zstd(a.get());
  archive_read_support_filter_none(a.get());
  archive_read_support_format_raw(a.get());
  if (archive_read_open_filename(a.get(), blob_path.c_str(), 1 << 20) != ARCHIVE_OK) {
    return makeError("open layer " + blob_path + ": " + archive_error_string(a.get()));
  }
  archive_entry* entry = nullptr;
  int rc = archive_read_next_header(a.get(), &entry);
  if (rc == ARCHIVE_EOF) return TarDigest{sha256Digest("", 0), 0};
  if (rc != ARCHIVE_OK) return makeError("read layer " + blob_path + ": " + archive_error_string(a.get()));
  Sha256Stream hash;
  TarDigest out;
  std::vector<char> buf(1 << 20);
  while (true) {
    la_ssize_t n = archive_read_data(a.get(), buf.data(), buf.size());
    if (n < 0) return makeError("decompress layer " + blob_path + ": " + archive_error_string(a.get()));
    if (n == 0) break;
    hash.update(buf.data(), static_cast<size_t>(n));
    out.bytes += static_cast<uint64_t>(n);
    OC_TRY(limit.check(out.bytes, "the decompressed tar stream"));
  }
  out.digest = hash.finish();
  return out;
}

}  // namespace offcore::oci
