// FileBlockDevice: a BlockDevice over a plain file (or a block device node).
// The "local disk" baseline for benchmarks and the backing store in tests.
//
// Thread-safe: every call is a positional syscall on one shared fd.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "base/result.h"
#include "storage/block_device.h"

namespace offcore {

class FileBlockDevice : public BlockDevice {
 public:
  // Opens an existing file read-write, or read-only when that is all the
  // permissions allow (writes then fail with kBlockReadOnly). A trailing
  // partial block of the file is not part of the device.
  static Result<std::shared_ptr<FileBlockDevice>> open(const std::string& path, uint32_t block_size);
  // Creates (or resizes) path as a sparse file of size_bytes, then opens it.
  static Result<std::shared_ptr<FileBlockDevice>> create(const std::string& path, uint64_t size_bytes,
                                                         uint32_t block_size);
  ~FileBlockDevice() override;
  FileBlockDevice(const FileBlockDevice&) = delete;
  FileBlockDevice& operator=(const FileBlockDevice&) = delete;

  uint64_t sizeBytes() const override { return size_; }
  uint32_t blockSize() const override { return block_size_; }
  bool readOnly() const { return read_only_; }
  const std::string& path() const { return path_; }

  Status read(uint64_t offset, void* buf, size_t len) override;
  Status write(uint64_t offset, const void* buf, size_t len) override;
  Status flush() override;
  Status discard(uint64_t offset, uint64_t len) override;
  Status writeZeroes(uint64_t offset, uint64_t len) override;

 private:
  FileBlockDevice(std::string path, int fd, uint64_t size, uint32_t block_size, bool read_only)
      : path_(std::move(path)), fd_(fd), size_(size), block_size_(block_size), read_only_(read_only) {}
  Status checkRange(const char* op, uint64_t offset, uint64_t len) const;
  Status writeZeroBuffers(uint64_t offset, uint64_t len);

  const std::string path_;
  const int fd_;
  const uint64_t size_;
  const uint32_t block_size_;
  const bool read_only_;
};

}  // namespace offcore
