// A guest driver's side of one packed virtqueue (virtio 1.1 §2.7), for
// tests and the fuzz target: lays out the descriptor ring and the two event
// suppression areas in a FakeGuestMemory, makes chains available with the
// driver's wrap counter, and reads back the used descriptors the device wrote.
#pragma once

#include <endian.h>
#include <linux/virtio_ring.h>

#include <cstring>
#include <optional>
#include <vector>

#include "fake_guest_memory.h"
#include "guest_driver.h"
#include "virt/vhost/virtqueue.h"

namespace offcore::virt::test {

struct PackedUsed {
  uint16_t id;
  uint32_t len;
  uint16_t flags;
};

class PackedDriver {
 public:
  static constexpr uint64_t kBase = 0x100000;
  static constexpr uint16_t kAvail = 1u << VRING_PACKED_DESC_F_AVAIL;
  static constexpr uint16_t kUsed = 1u << VRING_PACKED_DESC_F_USED;

  explicit PackedDriver(uint16_t size, size_t memBytes = 4 << 20) : mem(kBase, memBytes), size_(size) {
    descGpa = kBase;
    driverGpa = descGpa + 16ull * size;
    deviceGpa = driverGpa + 4;
    heap_ = (deviceGpa + 4 + 4095) & ~4095ull;
  }

  VirtQueueConfig config(bool eventIdx = false, bool indirect = false) const {
    VirtQueueConfig c;
    c.size = size_;
    c.packed = true;
    c.addrs.descUserAddr = mem.uva(descGpa);
    c.addrs.availUserAddr = mem.uva(driverGpa);
    c.addrs.usedUserAddr = mem.uva(deviceGpa);
    // As QEMU sends it: avail position, used position above it.
    c.lastAvailIdx = uint32_t(next_ | (wrap_ ? 0x8000 : 0)) | uint32_t(usedNext_ | (usedWrap_ ? 0x8000 : 0)) << 16;
    c.eventIdx = eventIdx;
    c.indirect = indirect;
    return c;
  }

  uint64_t alloc(uint64_t n, uint64_t align = 4096) {
    heap_ = (heap_ + align - 1) & ~(align - 1);
    uint64_t g = heap_;
    heap_ += n;
    return g;
  }

  void setDesc(uint64_t tableGpa, uint32_t i, uint64_t addr, uint32_t len, uint16_t id, uint16_t flags) {
    vring_packed_desc d{htole64(addr), htole32(len), htole16(id), htole16(flags)};
    std::memcpy(mem.at(tableGpa + 16ull * i), &d, sizeof d);
  }

  // The avail/used bits that make a descriptor available in the lap `wrap`.
  static uint16_t availBits(bool wrap) { return wrap ? kAvail : kUsed; }

  // Makes bufs available as one chain at the driver's position, every
  // descriptor carrying `id` and the head's flags written last, like Linux.
  // Returns the number of slots taken.
  uint16_t post(const std::vector<Buf>& bufs, uint16_t id) {
    uint16_t head = next_;
    uint16_t headFlags = 0;
    for (size_t k = 0; k < bufs.size(); k++) {
      uint16_t flags = (bufs[k].writable ? VRING_DESC_F_WRITE : 0) | (k + 1 < bufs.size() ? VRING_DESC_F_NEXT : 0) |
                       availBits(wrap_);
      if (k == 0) {
        headFlags = flags;
        setDesc(descGpa, next_, bufs[k].gpa, bufs[k].len, id, 0);
        // Until its flags are written the head must not look available.
        put16(descGpa + 16ull * next_ + 14, availBits(!wrap_));
      } else {
        setDesc(descGpa, next_, bufs[k].gpa, bufs[k].len, id, flags);
      }
      step();
    }
    put16(descGpa + 16ull * head + 14, headFlags);
    return static_cast<uint16_t>(bufs.size());
  }

  // One INDIRECT descriptor at the driver's position for a table at tableGpa
  // of `entries` descriptors (already written with setDesc()).
  void postIndirect(uint64_t tableGpa, uint32_t entries, uint16_t id, uint16_t extraFlags = 0) {
    setDesc(descGpa, next_, tableGpa, entries * 16, id, VRING_DESC_F_INDIRECT | extraFlags | availBits(wrap_));
    step();
  }

  // The used descriptor the device wrote at the driver's used position, and
  // moves past `slots` descriptors; nullopt if the device has not written it.
  std::optional<PackedUsed> takeUsed(uint16_t slots) {
    vring_packed_desc d;
    std::memcpy(&d, mem.at(descGpa + 16ull * usedNext_), sizeof d);
    uint16_t flags = le16toh(d.flags);
    bool avail = (flags & kAvail) != 0, used = (flags & kUsed) != 0;
    if (avail != used || used != usedWrap_) return std::nullopt;
    PackedUsed u{le16toh(d.id), le32toh(d.len), flags};
    usedNext_ += slots;
    if (usedNext_ >= size_) {
      usedNext_ -= size_;
      usedWrap_ = !usedWrap_;
    }
    return u;
  }

  void setDriverEvent(uint16_t flags, uint16_t offWrap = 0) {
    put16(driverGpa, offWrap);
    put16(driverGpa + 2, flags);
  }
  uint16_t deviceEventFlags() { return get16(deviceGpa + 2); }

  void put16(uint64_t gpa, uint16_t v) {
    v = htole16(v);
    std::memcpy(mem.at(gpa), &v, 2);
  }
  uint16_t get16(uint64_t gpa) {
    uint16_t v;
    std::memcpy(&v, mem.at(gpa), 2);
    return le16toh(v);
  }
  uint16_t next() const { return next_; }
  bool wrap() const { return wrap_; }

  FakeGuestMemory mem;
  uint64_t descGpa, driverGpa, deviceGpa;

 private:
  void step() {
    if (++next_ == size_) {
      next_ = 0;
      wrap_ = !wrap_;
    }
  }
  uint16_t size_;
  uint16_t next_ = 0;
  bool wrap_ = true;
  uint16_t usedNext_ = 0;
  bool usedWrap_ = true;
  uint64_t heap_;
};

}  // namespace offcore::virt::test
