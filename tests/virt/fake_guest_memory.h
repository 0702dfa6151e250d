// GuestMemory and DirtyLog fakes for the virtqueue and virtio-blk tests and
// the fuzz target: one std::vector-backed region at a chosen guest-physical
// address, its front-end virtual address = gpa + uvaDelta. The vector is
// exactly the region, so ASan catches any access past it.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "virt/vhost/dirty_log.h"
#include "virt/vhost/guest_memory.h"

namespace offcore::virt::test {

class FakeGuestMemory : public GuestMemory {
 public:
  static constexpr uint64_t kDefaultUvaDelta = 0x7f0000000000ull;

  FakeGuestMemory(uint64_t gpa, size_t size, uint64_t uvaDelta = kDefaultUvaDelta)
      : gpa_(gpa), uvaDelta_(uvaDelta), bytes_(size, 0) {}

  Result<uint8_t*> gpaToHost(uint64_t gpa, uint64_t len) const override {
    if (gpa < gpa_ || gpa - gpa_ >= bytes_.size() || len > bytes_.size() - (gpa - gpa_)) {
      return makeError("guest address 0x" + hex(gpa) + "+" + std::to_string(len) + " is outside guest memory");
    }
    return const_cast<uint8_t*>(bytes_.data()) + (gpa - gpa_);
  }
  Result<uint8_t*> uvaToHost(uint64_t uva, uint64_t len) const override {
    if (uva < uvaDelta_) return makeError("user address below the region");
    return gpaToHost(uva - uvaDelta_, len);
  }
  Result<uint64_t> uvaToGpa(uint64_t uva) const override {
    if (uva < uvaDelta_ || uva - uvaDelta_ < gpa_ || uva - uvaDelta_ - gpa_ >= bytes_.size()) {
      return makeError("user address outside the region");
    }
    return uva - uvaDelta_;
  }
  size_t regionCount() const override { return 1; }
  uint64_t totalBytes() const override { return bytes_.size(); }

  uint64_t base() const { return gpa_; }
  uint64_t uva(uint64_t gpa) const { return gpa + uvaDelta_; }
  uint8_t* at(uint64_t gpa) { return bytes_.data() + (gpa - gpa_); }
  std::vector<uint8_t>& bytes() { return bytes_; }

 private:
  static std::string hex(uint64_t v) {
    char buf[17];
    snprintf(buf, sizeof buf, "%llx", static_cast<unsigned long long>(v));
    return buf;
  }
  uint64_t gpa_;
  uint64_t uvaDelta_;
  std::vector<uint8_t> bytes_;
};

// Records every mark() call, in order.
class FakeDirtyLog : public DirtyLog {
 public:
  void mark(uint64_t gpa, uint64_t len) override { marks.emplace_back(gpa, len); }
  // Whether [gpa, gpa + len) is covered by one recorded mark.
  bool covers(uint64_t gpa, uint64_t len) const {
    for (auto [g, l] : marks) {
      if (g <= gpa && gpa + len <= g + l) return true;
    }
    return false;
  }
  std::vector<std::pair<uint64_t, uint64_t>> marks;
};

}  // namespace offcore::virt::test
