#include "disk/file_block_device.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace offcore {
namespace {

// Keeps the errno text in the message but gives callers a BlockErrno code,
// which is what transports map to protocol statuses.
Error blockError(const std::string& what, int err) {
  int code = kBlockIo;
  if (err == ENOSPC || err == EDQUOT) code = kBlockNoSpace;
  if (err == EROFS || err == EBADF) code = kBlockReadOnly;
  return Error{code, what + ": " + std::strerror(err)};
}

bool validBlockSize(uint32_t bs) { return bs >= 512 && (bs & (bs - 1)) == 0; }

}  // namespace

Result<std::shared_ptr<FileBlockDevice>> FileBlockDevice::open(const std::string& path, uint32_t block_size) {
  if (!validBlockSize(block_size)) {
    return makeError(
        "file block device " + path + ": block size " + std::to_string(block_size) + " must be a power of two >= 512",
        EINVAL);
  }
  bool read_only = false;
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0 && (errno == EACCES || errno == EROFS || errno == EPERM)) {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    read_only = true;
  }
  if (fd < 0) return errnoError("cannot open block file " + path);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return errnoError("cannot stat " + path, err);
  }
  uint64_t size = 0;
  if (S_ISREG(st.st_mode)) {
    size = static_cast<uint64_t>(st.st_size);
  } else if (S_ISBLK(st.st_mode)) {
    if (::ioctl(fd, BLKGETSIZE64, &size) != 0) {
      int err = errno;
      ::close(fd);
      return errnoError("cannot get the size of " + path, err);
    }
  } else {
    ::close(fd);
    return makeError(path + " is neither a regular file nor a block device", EINVAL);
  }
  size -= size % block_size;
  if (size == 0) {
    ::close(fd);
    return makeError(path + " is smaller than one block; grow it (truncate -s) first", EINVAL);
  }
  return std::shared_ptr<FileBlockDevice>(new FileBlockDevice(path, fd, size, block_size, read_only));
}

Result<std::shared_ptr<FileBlockDevice>> FileBlockDevice::create(const std::string& path, uint64_t size_bytes,
                                                                 uint32_t block_size) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return errnoError("cannot create block file " + path);
  int rc = ::ftruncate(fd, static_cast<off_t>(size_bytes));
  int err = errno;
  ::close(fd);
  if (rc != 0) return errnoError("cannot size " + path, err);
  return open(path, block_size);
}

FileBlockDevice::~FileBlockDevice() { ::close(fd_); }

Status FileBlockDevice::checkRange(const char* op, uint64_t offset, uint64_t len) const {
  if (offset % block_size_ != 0 || len % block_size_ != 0) {
    return makeError(std::string(op) + " " + path_ + ": offset " + std::to_string(offset) + " / length " +
                         std::to_string(len) + " not a multiple of " + std::to_string(block_size_),
                     kBlockInvalid);
  }
  if (offset > size_ || len > size_ - offset) {
    return makeError(
        std::string(op) + " " + path_ + ": range ends beyond the device (" + std::to_string(size_) + " bytes)",
        kBlockOutOfRange);
  }
  return okStatus();
}

Status FileBlockDevice::read(uint64_t offset, void* buf, size_t len) {
  OC_TRY(checkRange("read", offset, len));
  auto* p = static_cast<char*>(buf);
  size_t done = 0;
  while (done < len) {
    ssize_t n = ::pread(fd_, p + done, len - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return blockError("read " + path_ + " at " + std::to_string(offset + done), errno);
    }
    if (n == 0) {
      // Someone shrank the file under us: that part reads as a hole would.
      std::memset(p + done, 0, len - done);
      break;
    }
    done += static_cast<size_t>(n);
  }
  return okStatus();
}

Status FileBlockDevice::write(uint64_t offset, const void* buf, size_t len) {
  OC_TRY(checkRange("write", offset, len));
  if (read_only_) return makeError("write " + path_ + ": opened read-only", kBlockReadOnly);
  const auto* p = static_cast<const char*>(buf);
  size_t done = 0;
  while (done < len) {
    ssize_t n = ::pwrite(fd_, p + done, len - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return blockError("write " + path_ + " at " + std::to_string(offset + done), errno);
    }
    done += static_cast<size_t>(n);
  }
  return okStatus();
}

Status FileBlockDevice::flush() {
  if (read_only_) return okStatus();
  if (::fdatasync(fd_) != 0) return blockError("fdatasync " + path_, errno);
  return okStatus();
}

Status FileBlockDevice::discard(uint64_t offset, uint64_t len) {
  OC_TRY(checkRange("discard", offset, len));
  if (read_only_) return makeError("discard " + path_ + ": opened read-only", kBlockReadOnly);
  if (len == 0) return okStatus();
  if (::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                  static_cast<off_t>(len)) == 0) {
    return okStatus();
  }
  // Block devices and some filesystems cannot punch holes; reads must still
  // return zeroes afterwards.
  if (errno == EOPNOTSUPP || errno == ENODEV) return writeZeroBuffers(offset, len);
  return blockError("discard " + path_, errno);
}

Status FileBlockDevice::writeZeroes(uint64_t offset, uint64_t len) {
  OC_TRY(checkRange("write zeroes", offset, len));
  if (read_only_) return makeError("write zeroes " + path_ + ": opened read-only", kBlockReadOnly);
  if (len == 0) return okStatus();
  if (::fallocate(fd_, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                  static_cast<off_t>(len)) == 0) {
    return okStatus();
  }
  if (errno == EOPNOTSUPP || errno == ENODEV) return writeZeroBuffers(offset, len);
  return blockError("write zeroes " + path_, errno);
}

Status FileBlockDevice::writeZeroBuffers(uint64_t offset, uint64_t len) {
  std::vector<char> zeroes(std::min<uint64_t>(len, 1 << 20), 0);
  while (len > 0) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(len, zeroes.size()));
    OC_TRY(write(offset, zeroes.data(), n));
    offset += n;
    len -= n;
  }
  return okStatus();
}

}  // namespace offcore
