// The data path of a volume. Reads and writes to clusters the volume owns
// take only its map_mutex, shared; nothing store-wide. A write to a cluster
// it does not own allocates one: reserve, fill (copy-on-write from the
// parent chain, or zeroes), fdatasync data.img, then journal the mapping.
// Until that record is durable the new cluster is garbage nobody points at.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>

#include "storage/store_core.h"

namespace offcore {
namespace {

constexpr uint64_t kNoEntry = ~0ULL - 1;  // lookup(): the volume has no map entry

bool owned(uint64_t entry) { return entry != kNoEntry && entry != kZeroCluster; }

class VolumeHandle final : public BlockDevice {
 public:
  VolumeHandle(std::shared_ptr<StoreCore> core, std::shared_ptr<VolumeState> v)
      : core_(std::move(core)), v_(std::move(v)), fd_(core_->dataFd()) {}
  ~VolumeHandle() override { v_->handles.fetch_sub(1); }

  uint64_t sizeBytes() const override {
    std::shared_lock lk(v_->map_mutex);
    return v_->rec->size_bytes;
  }
  uint32_t blockSize() const override { return kVolumeBlockSize; }

  Status read(uint64_t offset, void* buf, size_t len) override {
    OC_TRY(checkRange(offset, len, false));
    auto* p = static_cast<char*>(buf);
    return forEachCluster(offset, len, [&](uint64_t vc, uint64_t off, uint64_t n) {
      Status st = readCluster(vc, off, p, n);
      p += n;
      return st;
    });
  }

  Status write(uint64_t offset, const void* buf, size_t len) override {
    OC_TRY(checkRange(offset, len, true));
    const auto* p = static_cast<const char*>(buf);
    return forEachCluster(offset, len, [&](uint64_t vc, uint64_t off, uint64_t n) {
      Status st = writeCluster(vc, off, p, n);
      p += n;
      return st;
    });
  }

  Status flush() override {
    if (core_->closed()) return closedError();
    if (::fdatasync(fd_) != 0) return errnoError("fdatasync data.img", errno).wrap("flush");
    return okStatus();
  }

  Status discard(uint64_t offset, uint64_t len) override { return zeroRange(offset, len); }
  Status writeZeroes(uint64_t offset, uint64_t len) override { return zeroRange(offset, len); }
  // The clusters this volume owns (not its parents'): what writing to it and
  // discarding from it change. O(1): the count is kept with the map.
  std::optional<uint64_t> allocatedBytes() const override {
    std::shared_lock lk(v_->map_mutex);
    return std::min(v_->rec->owned * kClusterSize, v_->rec->size_bytes);
  }

 private:
  static Error closedError() { return makeError("volume store is closed; reopen it and the volume", kBlockIo); }

  Status checkRange(uint64_t offset, uint64_t len, bool writing) const {
    if (core_->closed()) return closedError();
    if (offset % kVolumeBlockSize != 0 || len % kVolumeBlockSize != 0)
      return makeError("offset and length must be multiples of 4096", kBlockInvalid);
    if (writing && v_->read_only) return makeError("snapshots are read-only", kBlockReadOnly);
    uint64_t size = sizeBytes();
    if (offset > size || len > size - offset)
      return makeError("range ends beyond the volume's " + std::to_string(size) + " bytes", kBlockOutOfRange);
    return okStatus();
  }

  template <typename Fn>
  Status forEachCluster(uint64_t offset, uint64_t len, Fn&& fn) {
    while (len > 0) {
      uint64_t vc = offset / kClusterSize, off = offset % kClusterSize;
      uint64_t n = std::min(len, kClusterSize - off);
      OC_TRY(fn(vc, off, n));
      offset += n;
      len -= n;
    }
    return okStatus();
  }

  // Callers hold v_->map_mutex (shared or exclusive) or v_->write_mutex.
  uint64_t lookup(uint64_t vc) const {
    auto it = v_->rec->map.find(vc);
    return it == v_->rec->map.end() ? kNoEntry : it->second;
  }
  // The physical cluster holding vc's data in the parent chain, if any.
  // Snapshots never change, so the chain needs no locks beyond v_'s.
  std::optional<uint64_t> fromParents(uint64_t vc) const {
    for (const VolumeState* p = v_->parent.get(); p != nullptr; p = p->parent.get()) {
      auto it = p->rec->map.find(vc);
      if (it == p->rec->map.end()) continue;
      if (it->second == kZeroCluster) return std::nullopt;
      return it->second;
    }
    return std::nullopt;
  }

  Status readCluster(uint64_t vc, uint64_t off, char* buf, uint64_t n) {
    std::shared_lock lk(v_->map_mutex);
    uint64_t entry = lookup(vc);
    std::optional<uint64_t> src;
    if (owned(entry)) {
      src = entry;
    } else if (entry == kNoEntry) {
      src = fromParents(vc);
    }
    if (!src) {
      std::memset(buf, 0, n);
      return okStatus();
    }
    const uint64_t at = *src * kClusterSize + off;
    if (const MappedReadView* view = core_->dataView(); view && view->copyOut(buf, at, n)) return okStatus();
    return preadFull(fd_, buf, n, at);
  }

  // data == nullptr writes zeroes.
  Status writeInPlace(uint64_t pc, uint64_t off, const char* data, uint64_t n) {
    if (data) return pwriteFull(fd_, data, n, pc * kClusterSize + off);
    std::unique_ptr<char[]> zeroes(new char[n]());
    return pwriteFull(fd_, zeroes.get(), n, pc * kClusterSize + off);
  }

  Status writeCluster(uint64_t vc, uint64_t off, const char* data, uint64_t n) {
    {  // the hot path: a cluster this volume owns
      std::shared_lock lk(v_->map_mutex);
      uint64_t entry = lookup(vc);
      if (owned(entry)) return writeInPlace(entry, off, data, n);
    }
    std::lock_guard w(v_->write_mutex);  // the map of v_ cannot change under us now
    uint64_t entry;
    std::optional<uint64_t> src;
    {
      std::shared_lock lk(v_->map_mutex);
      entry = lookup(vc);
      if (owned(entry)) return writeInPlace(entry, off, data, n);  // allocated meanwhile
      if (entry == kNoEntry) src = fromParents(vc);
    }
    if (!data && !src) return okStatus();  // zeroes over zeroes
    OC_ASSIGN_OR_RETURN(uint64_t pc, core_->reserveCluster());
    Status st = fillCluster(pc, src, off, data, n);
    if (st.ok() && ::fdatasync(fd_) != 0) st = errnoError("fdatasync data.img");
    if (!st.ok()) {
      core_->releaseCluster(pc);
      return st;
    }
    return core_->commitMap(*v_, vc, pc);
  }

  // Makes pc hold the cluster's old content (src's, or zeroes) with
  // [off, off+n) replaced by data (or zeroes).
  Status fillCluster(uint64_t pc, std::optional<uint64_t> src, uint64_t off, const char* data, uint64_t n) {
    const uint64_t base = pc * kClusterSize;
    if (data && off == 0 && n == kClusterSize) return pwriteFull(fd_, data, n, base);
    if (src) {
      std::unique_ptr<char[]> buf(new char[kClusterSize]);
      OC_TRY(preadFull(fd_, buf.get(), kClusterSize, *src * kClusterSize));
      if (data) {
        std::memcpy(buf.get() + off, data, n);
      } else {
        std::memset(buf.get() + off, 0, n);
      }
      return pwriteFull(fd_, buf.get(), kClusterSize, base);
    }
    // Zeroes without writing them: extend the file to cover the cluster
    // (a pwrite, unlike ftruncate, never shrinks it under a concurrent
    // allocation), then punch out whatever a previous owner left.
    char zero = 0;
    OC_TRY(pwriteFull(fd_, &zero, 1, base + kClusterSize - 1));
    if (::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(base),
                    static_cast<off_t>(kClusterSize)) != 0) {
      if (errno != EOPNOTSUPP && errno != ENOSYS) return errnoError("punch hole in data.img");
      std::unique_ptr<char[]> zeroes(new char[kClusterSize]());
      OC_TRY(pwriteFull(fd_, zeroes.get(), kClusterSize, base));
    }
    return data ? pwriteFull(fd_, data, n, base + off) : okStatus();
  }

  Status zeroRange(uint64_t offset, uint64_t len) {
    OC_TRY(checkRange(offset, len, true));
    const uint64_t size = sizeBytes();
    return forEachCluster(offset, len, [&](uint64_t vc, uint64_t off, uint64_t n) {
      // The tail of the last cluster beyond the volume's size is always zero.
      bool whole = off == 0 && (n == kClusterSize || vc * kClusterSize + n >= size);
      return whole ? deallocate(vc) : writeCluster(vc, off, nullptr, n);
    });
  }

  // After this, vc reads as zeroes and owns no space.
  Status deallocate(uint64_t vc) {
    std::lock_guard w(v_->write_mutex);
    uint64_t entry;
    bool parent_has_data;
    {
      std::shared_lock lk(v_->map_mutex);
      entry = lookup(vc);
      parent_has_data = fromParents(vc).has_value();
    }
    if (entry == kZeroCluster) return okStatus();
    if (entry == kNoEntry && !parent_has_data) return okStatus();
    // A zero marker only where it hides something.
    return core_->commitUnmap(*v_, vc, parent_has_data);
  }

  std::shared_ptr<StoreCore> core_;
  std::shared_ptr<VolumeState> v_;
  const int fd_;
};

}  // namespace

std::shared_ptr<BlockDevice> makeVolumeHandle(std::shared_ptr<StoreCore> core, std::shared_ptr<VolumeState> v) {
  return std::make_shared<VolumeHandle>(std::move(core), std::move(v));
}

}  // namespace offcore
