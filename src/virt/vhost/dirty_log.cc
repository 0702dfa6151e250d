// DirtyLog over a MAP_SHARED mapping of the front end's log fd.
#include "virt/vhost/dirty_log.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <string>

#include "virt/vhost/guest_memory.h"

namespace offcore::virt {
namespace {

class MappedDirtyLog final : public DirtyLog {
 public:
  MappedDirtyLog(void* map, size_t mapLen, uint8_t* log, uint64_t size)
      : map_(map), mapLen_(mapLen), log_(log), size_(size) {}
  ~MappedDirtyLog() override { ::munmap(map_, mapLen_); }
  MappedDirtyLog(const MappedDirtyLog&) = delete;
  MappedDirtyLog& operator=(const MappedDirtyLog&) = delete;

  void mark(uint64_t gpa, uint64_t len) override {
    if (len == 0) return;
    const uint64_t first = gpa / kLogPageSize;
    // The last byte of the range, clamped so that gpa + len cannot wrap.
    const uint64_t end = (len - 1 > UINT64_MAX - gpa) ? UINT64_MAX : gpa + (len - 1);
    const uint64_t last = end / kLogPageSize;
    const uint64_t pages = size_ * 8;
    for (uint64_t page = first; page <= last && page < pages; ++page) {
      std::atomic_ref<uint8_t> byte(log_[page / 8]);
      // seq_cst: the page data written before must be visible before its bit.
      byte.fetch_or(static_cast<uint8_t>(1u << (page % 8)));
    }
  }

 private:
  void* map_;
  size_t mapLen_;
  uint8_t* log_;
  uint64_t size_;
};

}  // namespace

Result<std::unique_ptr<DirtyLog>> DirtyLog::map(int fd, uint64_t size, uint64_t offset) {
  if (size == 0 || size > SIZE_MAX || offset + size < offset) {
    ::close(fd);
    return makeError("dirty log of " + std::to_string(size) + " bytes at offset " + std::to_string(offset) +
                     " is not mappable; the front end sent a bad SET_LOG_BASE");
  }
  // A log past its file, or one that can shrink, would SIGBUS on a mark().
  OC_ASSIGN_OR_RETURN(SharedArea m, mapFrontEndArea(fd, size, offset, "the dirty log", "SET_LOG_BASE"));
  return std::unique_ptr<DirtyLog>(new MappedDirtyLog(m.map, m.mapLen, m.data, size));
}

}  // namespace offcore::virt
