// A guest driver's side of one split virtqueue, for tests: lays out the
// descriptor table, avail and used rings in a FakeGuestMemory like a virtio
// driver would, posts chains, and reads back what the device pushed.
#pragma once

#include <endian.h>
#include <linux/virtio_ring.h>

#include <cstring>
#include <vector>

#include "fake_guest_memory.h"
#include "virt/vhost/virtqueue.h"

namespace offcore::virt::test {

struct Buf {
  uint64_t gpa;
  uint32_t len;
  bool writable;
};

class GuestDriver {
 public:
  static constexpr uint64_t kBase = 0x100000;

  explicit GuestDriver(uint16_t size, size_t memBytes = 4 << 20) : mem(kBase, memBytes), size_(size) {
    descGpa = kBase;
    availGpa = descGpa + 16ull * size;
    usedGpa = (availGpa + 6 + 2ull * size + 3) & ~3ull;
    heap_ = (usedGpa + 6 + 8ull * size + 4095) & ~4095ull;
  }

  VirtQueueConfig config(bool eventIdx = false, bool indirect = false) const {
    VirtQueueConfig c;
    c.size = size_;
    c.addrs.descUserAddr = mem.uva(descGpa);
    c.addrs.availUserAddr = mem.uva(availGpa);
    c.addrs.usedUserAddr = mem.uva(usedGpa);
    c.eventIdx = eventIdx;
    c.indirect = indirect;
    return c;
  }

  // A fresh buffer of n bytes in guest memory (page-aligned by default).
  uint64_t alloc(uint64_t n, uint64_t align = 4096) {
    heap_ = (heap_ + align - 1) & ~(align - 1);
    uint64_t g = heap_;
    heap_ += n;
    return g;
  }

  void setDesc(uint64_t tableGpa, uint32_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
    vring_desc d{htole64(addr), htole32(len), htole16(flags), htole16(next)};
    std::memcpy(mem.at(tableGpa + 16ull * i), &d, sizeof d);
  }
  void setDesc(uint32_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
    setDesc(descGpa, i, addr, len, flags, next);
  }

  // Writes bufs as a chain of consecutive descriptors from the next free
  // slot and makes it available. Returns the head.
  uint16_t post(const std::vector<Buf>& bufs) {
    uint16_t head = nextDesc_;
    for (size_t k = 0; k < bufs.size(); k++) {
      uint16_t i = (head + k) % size_;
      bool last = k + 1 == bufs.size();
      uint16_t flags = (bufs[k].writable ? VRING_DESC_F_WRITE : 0) | (last ? 0 : VRING_DESC_F_NEXT);
      setDesc(i, bufs[k].gpa, bufs[k].len, flags, (i + 1) % size_);
    }
    nextDesc_ = (head + bufs.size()) % size_;
    publish(head);
    return head;
  }

  // Puts head into the avail ring and bumps avail idx.
  void publish(uint16_t head) {
    put16(availGpa + 4 + 2ull * (availIdx % size_), head);
    availIdx++;
    put16(availGpa + 2, availIdx);
  }

  uint16_t usedIdx() { return get16(usedGpa + 2); }
  vring_used_elem used(uint16_t slot) {
    vring_used_elem e;
    std::memcpy(&e, mem.at(usedGpa + 4 + 8ull * (slot % size_)), sizeof e);
    return vring_used_elem{le32toh(e.id), le32toh(e.len)};
  }
  uint16_t usedFlags() { return get16(usedGpa); }
  uint16_t availEvent() { return get16(usedGpa + 4 + 8ull * size_); }
  void setAvailFlags(uint16_t f) { put16(availGpa, f); }
  void setUsedEvent(uint16_t v) { put16(availGpa + 4 + 2ull * size_, v); }
  void setAvailIdx(uint16_t v) {
    availIdx = v;
    put16(availGpa + 2, v);
  }

  void put16(uint64_t gpa, uint16_t v) {
    v = htole16(v);
    std::memcpy(mem.at(gpa), &v, 2);
  }
  uint16_t get16(uint64_t gpa) {
    uint16_t v;
    std::memcpy(&v, mem.at(gpa), 2);
    return le16toh(v);
  }

  FakeGuestMemory mem;
  uint64_t descGpa, availGpa, usedGpa;
  uint16_t availIdx = 0;

 private:
  uint16_t size_;
  uint16_t nextDesc_ = 0;
  uint64_t heap_;
};

}  // namespace offcore::virt::test
