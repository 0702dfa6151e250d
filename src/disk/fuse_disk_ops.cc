// The FUSE low-level callbacks of a FuseDisk: the disk file's attributes and
// its I/O, mapped onto the BlockDevice through ByteRangeIo.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "base/log.h"
#include "disk/fuse_disk_server.h"

namespace offcore {
namespace {

// The size never changes while mounted and only we write the data, so the
// kernel may keep attributes (and, with keep_cache, page cache) for a day.
constexpr double kAttrTimeout = 86400.0;

// Anything that is not "full" or "read-only" is EIO to the application: it
// must never mistake a failed read for data.
int errnoFor(const Error& e) {
  switch (e.code) {
    case kBlockNoSpace: return ENOSPC;
    case kBlockReadOnly: return EROFS;
    default: return EIO;
  }
}

}  // namespace

int FuseDisk::Server::fail(const char* op, uint64_t off, uint64_t len, const Error& e) {
  uint64_t n = errors.fetch_add(1, std::memory_order_relaxed) + 1;
  if (n <= 10 || n % 1000 == 0) {
    spdlog::warn("fuse disk {}: {} {}+{} failed: {} ({} errors so far)", path, op, off, len, e.message, n);
  }
  return errnoFor(e);
}

namespace {

using Server = FuseDisk::Server;

Server& serverOf(fuse_req_t req) { return *static_cast<Server*>(fuse_req_userdata(req)); }

// A read or write handed to the device: answered from the device's
// completion thread (or inline, for a device without an async path). Owns
// its data buffer; a write's data is copied in, since libfuse reuses the
// buffer it read the request into once the callback returns.
struct FuseIo final : IoCompletion {
  FuseIo(Server& s, fuse_req_t req, uint64_t offset, size_t len, bool is_write)
      : s(s), req(req), offset(offset), len(len), is_write(is_write), buf(s.buffers.take(len)) {
    s.beginRequest();
  }
  void done(Status status) override {
    if (!status.ok()) {
      fuse_reply_err(req, s.fail(is_write ? "write" : "read", offset, len, status.error()));
    } else if (is_write) {
      s.bytes_written.fetch_add(len, std::memory_order_relaxed);
      fuse_reply_write(req, len);
    } else {
      s.bytes_read.fetch_add(len, std::memory_order_relaxed);
      fuse_reply_buf(req, buf.data, len);
    }
    s.buffers.give(buf);
    Server& server = s;
    delete this;
    server.endRequest();  // last: the session may be destroyed once it reaches zero
  }
  Server& s;
  const fuse_req_t req;
  const uint64_t offset;
  const size_t len;
  const bool is_write;
  BufferPool::Buffer buf;
};

void opInit(void* userdata, fuse_conn_info* conn) {
  // Write-through only: a write() returns after the device acknowledged it,
  // so a crash of the host side loses nothing it was told is written.
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  // Several reads in flight (readahead, parallel fio jobs).
  if (conn->capable & FUSE_CAP_ASYNC_READ) conn->want |= FUSE_CAP_ASYNC_READ;
  conn->max_write = kFuseDiskMaxIo;
  conn->max_read = kFuseDiskMaxIo;  // must equal the max_read mount option
  // Room for many outstanding async requests before the kernel throttles.
  conn->max_background = 64;
  conn->congestion_threshold = 48;
}

void opLookup(fuse_req_t req, fuse_ino_t, const char*) {
  fuse_reply_err(req, ENOENT);  // the root is a file: it has no children
}

void opGetattr(fuse_req_t req, fuse_ino_t, fuse_file_info*) {
  struct stat st = serverOf(req).attr();
  fuse_reply_attr(req, &st, kAttrTimeout);
}

void opSetattr(fuse_req_t req, fuse_ino_t, struct stat* attr, int to_set, fuse_file_info*) {
  Server& s = serverOf(req);
  // A disk's size is fixed while it is presented; truncate and O_TRUNC fail.
  if ((to_set & FUSE_SET_ATTR_SIZE) && static_cast<uint64_t>(attr->st_size) != s.size) {
    fuse_reply_err(req, EPERM);
    return;
  }
  if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
    fuse_reply_err(req, EPERM);
    return;
  }
  struct stat st = s.attr();  // timestamps: accepted and ignored (touch works)
  fuse_reply_attr(req, &st, kAttrTimeout);
}

void opOpen(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  Server& s = serverOf(req);
  if (s.options.read_only && (fi->flags & O_ACCMODE) != O_RDONLY) {
    fuse_reply_err(req, EROFS);
    return;
  }
  // Only this daemon changes the data, so cached pages stay valid across opens.
  fi->keep_cache = 1;
  fi->direct_io = s.options.direct_io ? 1 : 0;
  fi->noflush = 1;  // close is not a durability point; only fsync is
  s.open_files.fetch_add(1, std::memory_order_relaxed);
  if (fuse_reply_open(req, fi) != 0) s.open_files.fetch_sub(1, std::memory_order_relaxed);
}

void opRead(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info*) {
  Server& s = serverOf(req);
  s.reads.fetch_add(1, std::memory_order_relaxed);
  if (off < 0) {
    fuse_reply_err(req, EINVAL);
    return;
  }
  auto offset = static_cast<uint64_t>(off);
  if (offset >= s.size || size == 0) {
    fuse_reply_buf(req, nullptr, 0);  // EOF
    return;
  }
  size_t len = static_cast<size_t>(std::min<uint64_t>(size, s.size - offset));
  auto* io = new FuseIo(s, req, offset, len, false);
  s.io.readAsync(offset, io->buf.data, len, io);
}

void opWrite(fuse_req_t req, fuse_ino_t, const char* data, size_t size, off_t off, fuse_file_info*) {
  Server& s = serverOf(req);
  s.writes.fetch_add(1, std::memory_order_relaxed);
  if (s.options.read_only) {
    fuse_reply_err(req, EROFS);
    return;
  }
  if (off < 0) {
    fuse_reply_err(req, EINVAL);
    return;
  }
  auto offset = static_cast<uint64_t>(off);
  if (size == 0) {
    fuse_reply_write(req, 0);
    return;
  }
  if (offset >= s.size) {
    fuse_reply_err(req, ENOSPC);  // like writing past the end of a block device
    return;
  }
  // A write crossing the end is cut short; the caller's retry gets ENOSPC.
  size_t len = static_cast<size_t>(std::min<uint64_t>(size, s.size - offset));
  auto* io = new FuseIo(s, req, offset, len, true);
  std::memcpy(io->buf.data, data, len);
  if (!tl_fuse_poller) {
    s.io.writeAsync(offset, io->buf.data, len, io);
    return;
  }
  // A polled loop must not wait for a read-modify-write's lock (that
  // read-modify-write may be waiting for a completion only the loop reaps).
  if (!s.io.tryWriteAsync(offset, io->buf.data, len, io)) {
    postToWorkers(s, [&s, offset, len, io] { s.io.writeAsync(offset, io->buf.data, len, io); });
  }
}

void doFsync(fuse_req_t req) {
  Server& s = serverOf(req);
  s.flushes.fetch_add(1, std::memory_order_relaxed);
  Status st = s.device->flush();
  fuse_reply_err(req, st.ok() ? 0 : s.fail("flush", 0, 0, st.error()));
}

void opFsync(fuse_req_t req, fuse_ino_t, int, fuse_file_info*) { doFsync(req); }
void opFsyncdir(fuse_req_t req, fuse_ino_t, int, fuse_file_info*) { doFsync(req); }

// close(): not a durability point (only fsync maps to the device's flush).
void opFlush(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, 0); }
void opRelease(fuse_req_t req, fuse_ino_t, fuse_file_info*) {
  serverOf(req).open_files.fetch_sub(1, std::memory_order_relaxed);
  fuse_reply_err(req, 0);
}

void opFallocate(fuse_req_t req, fuse_ino_t, int mode, off_t off, off_t length, fuse_file_info*) {
  Server& s = serverOf(req);
  const bool punch = mode & FALLOC_FL_PUNCH_HOLE;
  const bool zero = mode & FALLOC_FL_ZERO_RANGE;
  const bool keep_size = mode & FALLOC_FL_KEEP_SIZE;
  const int other = mode & ~(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE);
  // Plain allocation (mode 0) means nothing on a fully provisioned disk, and
  // collapse/insert/unshare would change the size or layout.
  if (other != 0 || punch == zero || (punch && !keep_size)) {
    fuse_reply_err(req, EOPNOTSUPP);
    return;
  }
  if (s.options.read_only) {
    fuse_reply_err(req, EROFS);
    return;
  }
  if (off < 0 || length <= 0) {
    fuse_reply_err(req, EINVAL);
    return;
  }
  auto offset = static_cast<uint64_t>(off);
  uint64_t end = offset + static_cast<uint64_t>(length);
  if (end > s.size && !keep_size) {
    fuse_reply_err(req, ENOSPC);  // zeroing past the end would grow the disk
    return;
  }
  end = std::min(end, s.size);
  if (offset >= end) {
    fuse_reply_err(req, 0);
    return;
  }
  Status st;
  if (punch) {
    s.discards.fetch_add(1, std::memory_order_relaxed);
    st = s.io.discard(offset, end - offset);
  } else {
    s.write_zeroes.fetch_add(1, std::memory_order_relaxed);
    st = s.io.writeZeroes(offset, end - offset);
  }
  fuse_reply_err(req, st.ok() ? 0 : s.fail(punch ? "discard" : "write zeroes", offset, end - offset, st.error()));
}

// A loop device takes its discard granularity from the backing file's
// f_bsize, so report the device's block size rather than libfuse's 512.
void opStatfs(fuse_req_t req, fuse_ino_t) {
  Server& s = serverOf(req);
  struct statvfs sv {};
  sv.f_bsize = s.block_size;
  sv.f_frsize = s.block_size;
  sv.f_blocks = s.size / s.block_size;
  sv.f_files = 1;
  sv.f_namemax = 255;
  fuse_reply_statfs(req, &sv);
}

}  // namespace

fuse_lowlevel_ops fuseDiskOps() {
  fuse_lowlevel_ops ops{};
  ops.init = opInit;
  ops.lookup = opLookup;
  ops.getattr = opGetattr;
  ops.setattr = opSetattr;
  ops.open = opOpen;
  ops.read = opRead;
  ops.write = opWrite;
  ops.flush = opFlush;
  ops.release = opRelease;
  ops.fsync = opFsync;
  ops.fsyncdir = opFsyncdir;
  ops.statfs = opStatfs;
  ops.fallocate = opFallocate;
  return ops;
}

}  // namespace offcore
