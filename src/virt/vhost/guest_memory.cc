// GuestMemory over mmap(MAP_SHARED) of the front end's memory fds.
#include "virt/vhost/guest_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

namespace offcore::virt {
namespace {

struct Region {
  uint64_t gpa = 0;
  uint64_t uva = 0;
  uint64_t size = 0;
  uint8_t* host = nullptr;  // the region's first byte (mapping + page slack)
  void* map = nullptr;
  size_t mapLen = 0;
};

// [addr, addr + len) inside [start, start + size), without wrapping.
bool contains(uint64_t start, uint64_t size, uint64_t addr, uint64_t len) {
  if (addr < start) return false;
  uint64_t off = addr - start;
  if (off > size) return false;
  if (len == 0) return off < size;
  return len <= size - off;
}

std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

class MappedGuestMemory final : public GuestMemory {
 public:
  explicit MappedGuestMemory(std::vector<Region> regions) : regions_(std::move(regions)) {}
  ~MappedGuestMemory() override {
    for (auto& r : regions_) ::munmap(r.map, r.mapLen);
  }
  MappedGuestMemory(const MappedGuestMemory&) = delete;
  MappedGuestMemory& operator=(const MappedGuestMemory&) = delete;

  Result<uint8_t*> gpaToHost(uint64_t gpa, uint64_t len) const override {
    for (const auto& r : regions_) {
      if (contains(r.gpa, r.size, gpa, len)) return r.host + (gpa - r.gpa);
    }
    return makeError("guest-physical range " + hex(gpa) + "+" + std::to_string(len) +
                     " is outside guest memory (a broken or hostile guest driver)");
  }

  Result<uint8_t*> uvaToHost(uint64_t uva, uint64_t len) const override {
    for (const auto& r : regions_) {
      if (contains(r.uva, r.size, uva, len)) return r.host + (uva - r.uva);
    }
    return makeError("front-end address range " + hex(uva) + "+" + std::to_string(len) +
                     " is outside the memory table (the front end sent a ring address it did not map)");
  }

  Result<uint64_t> uvaToGpa(uint64_t uva) const override {
    for (const auto& r : regions_) {
      if (contains(r.uva, r.size, uva, 0)) return r.gpa + (uva - r.uva);
    }
    return makeError("front-end address " + hex(uva) + " is outside the memory table");
  }

  size_t regionCount() const override { return regions_.size(); }
  uint64_t totalBytes() const override {
    uint64_t t = 0;
    for (const auto& r : regions_) t += r.size;
    return t;
  }

 private:
  std::vector<Region> regions_;
};

bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen) { return a < b + blen && b < a + alen; }

Status checkTable(const std::vector<MemoryRegionDesc>& regions) {
  if (regions.empty()) return makeError("the memory table has no regions; the front end must send at least one");
  if (regions.size() > kMaxMemoryRegions) {
    return makeError("the memory table has " + std::to_string(regions.size()) + " regions, at most " +
                     std::to_string(kMaxMemoryRegions) + " are supported");
  }
  const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  for (size_t i = 0; i < regions.size(); ++i) {
    const auto& r = regions[i];
    const std::string name = "memory region " + std::to_string(i);
    if (r.fd < 0) return makeError(name + " has no fd");
    if (r.size == 0) return makeError(name + " is empty");
    if (r.guestPhysAddr + r.size < r.guestPhysAddr || r.userAddr + r.size < r.userAddr ||
        r.mmapOffset + r.size < r.mmapOffset) {
      return makeError(name + " wraps the 64-bit address space");
    }
    // The rings' indexes are read and written atomically through host
    // pointers; with the region's front-end address page aligned (QEMU maps
    // RAM in pages), a ring address aligned in the front end is aligned here.
    if (r.userAddr % page != 0) {
      return makeError(name + " starts at front-end address " + hex(r.userAddr) +
                       ", not page aligned; the front end must map page-aligned memory");
    }
    if (r.mmapOffset % page != 0) {
      return makeError(name + " starts at fd offset " + hex(r.mmapOffset) +
                       ", not page aligned; the front end must map page-aligned memory");
    }
    for (size_t j = 0; j < i; ++j) {
      const auto& o = regions[j];
      if (overlaps(r.guestPhysAddr, r.size, o.guestPhysAddr, o.size)) {
        return makeError(name + " overlaps region " + std::to_string(j) + " in guest-physical space");
      }
      if (overlaps(r.userAddr, r.size, o.userAddr, o.size)) {
        return makeError(name + " overlaps region " + std::to_string(j) + " in front-end address space");
      }
    }
  }
  return okStatus();
}

}  // namespace

Result<std::unique_ptr<GuestMemory>> GuestMemory::map(std::vector<MemoryRegionDesc> regions) {
  auto closeAll = [&regions] {
    for (auto& r : regions) {
      if (r.fd >= 0) ::close(r.fd);
      r.fd = -1;
    }
  };
  if (auto s = checkTable(regions); !s.ok()) {
    closeAll();
    return s.error();
  }
  std::vector<Region> mapped;
  auto unmapAll = [&mapped] {
    for (auto& m : mapped) ::munmap(m.map, m.mapLen);
  };
  for (size_t i = 0; i < regions.size(); ++i) {
    const auto& r = regions[i];
    if (r.size > SIZE_MAX) {
      unmapAll();
      closeAll();
      return makeError("memory region " + std::to_string(i) + " is larger than the address space");
    }
    // A region past the end of its file would map, then kill this process
    // with SIGBUS on the first access: refuse it here.
    struct stat st {};
    if (::fstat(r.fd, &st) == 0 && (S_ISREG(st.st_mode)) && static_cast<uint64_t>(st.st_size) < r.mmapOffset + r.size) {
      unmapAll();
      closeAll();
      return makeError("memory region " + std::to_string(i) + " (" + std::to_string(r.size) + " bytes at fd offset " +
                       hex(r.mmapOffset) + ") runs past the end of its " + std::to_string(st.st_size) +
                       "-byte memory file");
    }
    if (auto sealed = requireShrinkSealed(r.fd, "memory region " + std::to_string(i)); !sealed.ok()) {
      unmapAll();
      closeAll();
      return sealed.error();
    }
    void* p = ::mmap(nullptr, r.size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, r.fd,
                     static_cast<off_t>(r.mmapOffset));
    if (p == MAP_FAILED) {
      Error e = errnoError("map memory region " + std::to_string(i) + " (" + std::to_string(r.size) +
                           " bytes at fd offset " + hex(r.mmapOffset) + ")");
      unmapAll();
      closeAll();
      return e;
    }
    mapped.push_back(Region{r.guestPhysAddr, r.userAddr, r.size, static_cast<uint8_t*>(p), p, r.size});
  }
  closeAll();  // a mapping keeps the memory; the fds are no longer needed
  return std::unique_ptr<GuestMemory>(new MappedGuestMemory(std::move(mapped)));
}

Status requireShrinkSealed(int fd, const std::string& what) {
  int seals = ::fcntl(fd, F_GET_SEALS);
  if (seals < 0) return okStatus();  // not a memfd: nothing can be sealed
  if ((seals & F_SEAL_SHRINK) != 0) return okStatus();
  return makeError(what +
                   " is a memfd its sender can still shrink (no F_SEAL_SHRINK), which would crash this "
                   "back end; give QEMU memory-backend-memfd with seal=on (its default)");
}

Result<SharedArea> mapFrontEndArea(int fd, uint64_t size, uint64_t offset, const std::string& what,
                                   const std::string& request) {
  // The areas' fields are read and written atomically: keep them aligned.
  if (offset % 8 != 0 || size > UINT64_MAX - offset) {
    ::close(fd);
    return makeError(what + " at offset " + std::to_string(offset) +
                     " is not 8-byte aligned or wraps; the front end sent a bad " + request);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || st.st_size < 0 || static_cast<uint64_t>(st.st_size) < offset + size) {
    ::close(fd);
    return makeError(what + " of " + std::to_string(size) + " bytes at offset " + std::to_string(offset) +
                     " runs past the end of its file; the front end sent a bad " + request);
  }
  if (auto sealed = requireShrinkSealed(fd, what); !sealed.ok()) {
    ::close(fd);
    return sealed.error();
  }
  // mmap wants a page-aligned offset: map from the page below and skip ahead.
  const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  const uint64_t slack = offset % page;
  const size_t mapLen = static_cast<size_t>(size + slack);
  void* p = ::mmap(nullptr, mapLen, PROT_READ | PROT_WRITE, MAP_SHARED, fd, static_cast<off_t>(offset - slack));
  Error e = p == MAP_FAILED ? errnoError("map " + what + " (" + std::to_string(size) + " bytes)") : Error{};
  ::close(fd);
  if (p == MAP_FAILED) return e;
  return SharedArea{p, mapLen, static_cast<uint8_t*>(p) + slack};
}

}  // namespace offcore::virt
