// Writing and decoding chunked layer blobs (see chunk_index.h for the format).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "base/result.h"
#include "image/chunk_index.h"

namespace offcore {

struct ChunkWriterOptions {
  uint32_t chunk_size = 256 * 1024;  // power of two, kMinChunkSize..kMaxChunkSize
  ChunkCodec codec = ChunkCodec::kZstd;
  int zstd_level = 3;
};

// Reads raw_path, writes the data blob to blob_path (created or truncated,
// fsynced; removed again on error) and returns its index with blob_digest
// filled. Chunks that do not shrink are stored raw. progress(done, total),
// in raw bytes, is called after every chunk.
Result<ChunkIndex> writeChunkedBlob(const std::string& raw_path, const std::string& blob_path,
                                    const ChunkWriterOptions& options,
                                    std::function<void(uint64_t, uint64_t)> progress = {});

// Reads raw_path in chunk_size pieces and returns the index of it stored raw
// (chunk i at offset i * chunk_size; blob_digest = sha256 of the file), the
// digests a gateway-backed layer is verified against. sink(offset, bytes, n)
// sees every piece in order (the converter writes them to the volume); an
// error from it stops the walk.
Result<ChunkIndex> indexRawImage(const std::string& raw_path, uint32_t chunk_size,
                                 const std::function<Status(uint64_t, const char*, size_t)>& sink);

// Checks a raw chunk read from a back end that stores chunks uncompressed
// against its entry: length and sha256. A mismatch is EIO naming chunk_no.
Status verifyRawChunk(const ChunkEntry& entry, size_t chunk_no, const void* data, size_t len);

// Decodes one stored chunk into out (resized to entry.raw_len) and verifies
// the sha256 of the result. Any mismatch or decode failure is an Error with
// code EIO naming chunk_no.
Status decodeChunk(const ChunkEntry& entry, size_t chunk_no, const void* stored, size_t stored_len, std::string& out);

// Lowercase hex SHA-256 (OpenSSL EVP).
std::string sha256Hex(const void* data, size_t len);

}  // namespace offcore
