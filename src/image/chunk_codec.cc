#include "image/chunk_codec.h"

#include <fcntl.h>
#include <lz4.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>

namespace offcore {
namespace {

struct CloseFd {
  void operator()(int* fd) const {
    ::close(*fd);
    delete fd;
  }
};
using FdPtr = std::unique_ptr<int, CloseFd>;

struct FreeMdCtx {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
struct FreeCCtx {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};

std::string toHex(const uint8_t* p, size_t n) {
  static const char kHex[] = "0123456789abcdef";
  std::string s(n * 2, '0');
  for (size_t i = 0; i < n; i++) s[2 * i] = kHex[p[i] >> 4], s[2 * i + 1] = kHex[p[i] & 15];
  return s;
}

std::array<uint8_t, 32> sha256(const void* data, size_t len) {
  std::array<uint8_t, 32> md{};
  unsigned int n = 0;
  // EVP_Digest only fails on allocation failure; a zero digest then simply
  // never matches, which decodeChunk reports as EIO.
  EVP_Digest(data, len, md.data(), &n, EVP_sha256(), nullptr);
  return md;
}

Status readFull(int fd, char* buf, size_t len, uint64_t off, const std::string& path) {
  while (len > 0) {
    ssize_t n = ::pread(fd, buf, len, static_cast<off_t>(off));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errnoError("read " + path);
    if (n == 0) return makeError(path + " shrank while being chunked; retry the conversion", EIO);
    buf += n, len -= static_cast<size_t>(n), off += static_cast<uint64_t>(n);
  }
  return okStatus();
}

Status writeFull(int fd, const char* buf, size_t len, const std::string& path) {
  while (len > 0) {
    ssize_t n = ::write(fd, buf, len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errnoError("write " + path);
    buf += n, len -= static_cast<size_t>(n);
  }
  return okStatus();
}

Result<ChunkIndex> writeBlob(int in, int out, const std::string& raw_path, const std::string& blob_path,
                             const ChunkWriterOptions& opt, const std::function<void(uint64_t, uint64_t)>& progress) {
  struct stat st;
  if (::fstat(in, &st) != 0) return errnoError("stat " + raw_path);
  ChunkIndex index;
  index.chunk_size = opt.chunk_size;
  index.raw_size = static_cast<uint64_t>(st.st_size);
  uint64_t count = index.raw_size / opt.chunk_size + (index.raw_size % opt.chunk_size != 0);
  if (count > UINT32_MAX) return makeError(raw_path + " is too large for this chunk size; use larger chunks", EFBIG);

  std::unique_ptr<EVP_MD_CTX, FreeMdCtx> blob_md(EVP_MD_CTX_new());
  std::unique_ptr<ZSTD_CCtx, FreeCCtx> cctx(ZSTD_createCCtx());
  if (!blob_md || !cctx || EVP_DigestInit_ex(blob_md.get(), EVP_sha256(), nullptr) != 1)
    return makeError("out of memory setting up the chunk writer", ENOMEM);
  std::string raw(opt.chunk_size, '\0');
  std::string packed(
      std::max(maxStoredLen(ChunkCodec::kZstd, opt.chunk_size), maxStoredLen(ChunkCodec::kLz4, opt.chunk_size)), '\0');
  uint64_t offset = 0;
  for (uint64_t i = 0; i < count; i++) {
    uint64_t raw_off = i * opt.chunk_size;
    auto raw_len = static_cast<uint32_t>(std::min<uint64_t>(opt.chunk_size, index.raw_size - raw_off));
    OC_TRY(readFull(in, raw.data(), raw_len, raw_off, raw_path));
    ChunkEntry c;
    c.offset = offset;
    c.raw_len = raw_len;
    c.sha256 = sha256(raw.data(), raw_len);
    size_t n = 0;
    if (opt.codec == ChunkCodec::kZstd) {
      n = ZSTD_compressCCtx(cctx.get(), packed.data(), packed.size(), raw.data(), raw_len, opt.zstd_level);
      if (ZSTD_isError(n)) return makeError(std::string("zstd: ") + ZSTD_getErrorName(n), EIO);
    } else if (opt.codec == ChunkCodec::kLz4) {
      int r =
          LZ4_compress_default(raw.data(), packed.data(), static_cast<int>(raw_len), static_cast<int>(packed.size()));
      if (r <= 0) return makeError("lz4 compression failed", EIO);
      n = static_cast<size_t>(r);
    }
    // Stored raw when compression does not pay: reads then skip the decoder.
    const char* stored = packed.data();
    c.codec = opt.codec;
    if (opt.codec == ChunkCodec::kRaw || n >= raw_len) {
      c.codec = ChunkCodec::kRaw;
      stored = raw.data();
      n = raw_len;
    }
    c.stored_len = static_cast<uint32_t>(n);
    OC_TRY(writeFull(out, stored, n, blob_path));
    if (EVP_DigestUpdate(blob_md.get(), stored, n) != 1) return makeError("sha256 of the blob failed", EIO);
    offset += n;
    index.chunks.push_back(c);
    if (progress) progress(raw_off + raw_len, index.raw_size);
  }
  uint8_t md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  if (EVP_DigestFinal_ex(blob_md.get(), md, &md_len) != 1) return makeError("sha256 of the blob failed", EIO);
  index.blob_digest = "sha256:" + toHex(md, md_len);
  if (::fsync(out) != 0) return errnoError("fsync " + blob_path);
  return index;
}

}  // namespace

std::string sha256Hex(const void* data, size_t len) {
  auto md = sha256(data, len);
  return toHex(md.data(), md.size());
}

Result<ChunkIndex> writeChunkedBlob(const std::string& raw_path, const std::string& blob_path,
                                    const ChunkWriterOptions& options,
                                    std::function<void(uint64_t, uint64_t)> progress) {
  uint32_t cs = options.chunk_size;
  if (cs < kMinChunkSize || cs > kMaxChunkSize || (cs & (cs - 1)) != 0)
    return makeError("chunk size " + std::to_string(cs) + " must be a power of two in 4 KiB..16 MiB", EINVAL);
  if (options.codec != ChunkCodec::kRaw && options.codec != ChunkCodec::kZstd && options.codec != ChunkCodec::kLz4)
    return makeError("unknown chunk codec", EINVAL);
  if (options.codec == ChunkCodec::kZstd &&
      (options.zstd_level < ZSTD_minCLevel() || options.zstd_level > ZSTD_maxCLevel()))
    return makeError("zstd level " + std::to_string(options.zstd_level) + " out of range", EINVAL);

  int in = ::open(raw_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return errnoError("open " + raw_path);
  FdPtr in_fd(new int(in));
  int out = ::open(blob_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (out < 0) return errnoError("create " + blob_path);
  FdPtr out_fd(new int(out));
  auto index = writeBlob(in, out, raw_path, blob_path, options, progress);
  if (!index.ok()) {
    ::unlink(blob_path.c_str());  // a partial blob must never look like a finished one
    return index.error().wrap("chunk " + raw_path);
  }
  return index;
}

Status decodeChunk(const ChunkEntry& entry, size_t chunk_no, const void* stored, size_t stored_len, std::string& out) {
  auto fail = [&](const std::string& what) {
    return makeError("chunk " + std::to_string(chunk_no) + ": " + what + "; the blob is corrupt, re-fetch it", EIO);
  };
  if (stored_len != entry.stored_len)
    return fail("got " + std::to_string(stored_len) + " stored bytes, index says " + std::to_string(entry.stored_len));
  // Bounds the allocation for indexes that were not validated by parseChunkIndex.
  if (entry.raw_len > kMaxChunkSize) return fail("raw length " + std::to_string(entry.raw_len) + " too large");
  out.resize(entry.raw_len);
  switch (entry.codec) {
    case ChunkCodec::kRaw:
      if (stored_len != entry.raw_len) return fail("raw chunk with stored length != raw length");
      if (stored_len > 0) std::memcpy(out.data(), stored, stored_len);
      break;
    case ChunkCodec::kZstd: {
      size_t n = ZSTD_decompress(out.data(), out.size(), stored, stored_len);
      if (ZSTD_isError(n)) return fail(std::string("zstd: ") + ZSTD_getErrorName(n));
      if (n != entry.raw_len)
        return fail("zstd produced " + std::to_string(n) + " bytes, want " + std::to_string(entry.raw_len));
      break;
    }
    case ChunkCodec::kLz4: {
      if (stored_len > static_cast<size_t>(LZ4_MAX_INPUT_SIZE)) return fail("lz4 input too large");
      int n = LZ4_decompress_safe(static_cast<const char*>(stored), out.data(), static_cast<int>(stored_len),
                                  static_cast<int>(entry.raw_len));
      if (n < 0) return fail("lz4: malformed data");
      if (static_cast<uint32_t>(n) != entry.raw_len)
        return fail("lz4 produced " + std::to_string(n) + " bytes, want " + std::to_string(entry.raw_len));
      break;
    }
    default: return fail("unknown codec " + std::to_string(static_cast<int>(entry.codec)));
  }
  if (sha256(out.data(), out.size()) != entry.sha256) return fail("sha256 mismatch");
  return okStatus();
}

}  // namespace offcore
