// Inflight regions: the memfd and the split-queue steps (see inflight.h).
#include "virt/vhost/inflight.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <string>

#include "virt/vhost/guest_memory.h"
#include "virt/vhost/inflight_bytes.h"
#include "virt/vhost/packed_inflight.h"

namespace offcore::virt {
namespace {

using inflight_bytes::get;
using inflight_bytes::kAlign;
using inflight_bytes::kVersion;
using inflight_bytes::put;
// Header fields.
constexpr size_t kVersionAt = 8, kDescNumAt = 10, kLastBatchHeadAt = 12, kUsedIdxAt = 14;
// DescStateSplit fields.
constexpr size_t kInflightAt = 0, kNextAt = 6, kCounterAt = 8;

}  // namespace

uint64_t inflightQueueBytes(uint16_t queueSize) { return (16 + 16ull * queueSize + kAlign - 1) & ~(kAlign - 1); }

uint64_t inflightQueueBytes(uint16_t queueSize, bool packed) {
  return packed ? packedInflightQueueBytes(queueSize) : inflightQueueBytes(queueSize);
}

Result<std::unique_ptr<InflightArea>> InflightArea::create(uint16_t numQueues, uint16_t queueSize, bool packed) {
  if (numQueues == 0 || queueSize == 0) {
    return makeError("GET_INFLIGHT_FD for " + std::to_string(numQueues) + " queues of " + std::to_string(queueSize) +
                     " descriptors; the front end must ask for at least one queue");
  }
  const uint64_t size = inflightQueueBytes(queueSize, packed) * numQueues;
  int fd = ::memfd_create("offcore-vhost-inflight", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return errnoError("memfd for the inflight area");
  // Sealed before QEMU sees it: the back end that maps it again after a
  // restart refuses an area that could shrink under it (SIGBUS).
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0 ||
      ::fcntl(fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) != 0) {
    Error e = errnoError("size and seal the inflight area of " + std::to_string(size) + " bytes");
    ::close(fd);
    return e;
  }
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    Error e = errnoError("map the inflight area");
    ::close(fd);
    return e;
  }
  return std::unique_ptr<InflightArea>(
      new InflightArea(fd, p, size, static_cast<uint8_t*>(p), size, numQueues, queueSize, packed));
}

Result<std::unique_ptr<InflightArea>> InflightArea::map(int fd, uint64_t size, uint64_t offset, uint16_t numQueues,
                                                        uint16_t queueSize, bool packed) {
  if (numQueues == 0 || queueSize == 0 || size < inflightQueueBytes(queueSize, packed) * numQueues || size > SIZE_MAX ||
      offset + size < offset) {
    ::close(fd);
    return makeError("inflight area of " + std::to_string(size) + " bytes cannot hold " + std::to_string(numQueues) +
                     " queues of " + std::to_string(queueSize) + (packed ? " (packed layout)" : "") +
                     "; the front end sent a bad SET_INFLIGHT_FD");
  }
  OC_ASSIGN_OR_RETURN(SharedArea m, mapFrontEndArea(fd, size, offset, "the inflight area", "SET_INFLIGHT_FD"));
  return std::unique_ptr<InflightArea>(
      new InflightArea(-1, m.map, m.mapLen, m.data, size, numQueues, queueSize, packed));
}

InflightArea::~InflightArea() {
  ::munmap(map_, mapLen_);
  if (fd_ >= 0) ::close(fd_);
}

uint8_t* InflightArea::queue(uint16_t i) const {
  return i < numQueues_ ? base_ + inflightQueueBytes(queueSize_, packed_) * i : nullptr;
}

std::vector<uint16_t> InflightRing::recover(uint16_t ringUsedIdx) {
  if (get<uint16_t>(r_ + kVersionAt) != kVersion || get<uint16_t>(r_ + kDescNumAt) != size_) {
    std::fill(r_, r_ + 16 + 16ull * size_, 0);
    put<uint16_t>(r_ + kDescNumAt, size_);
    put<uint16_t>(r_ + kUsedIdxAt, ringUsedIdx);
    put<uint16_t>(r_ + kVersionAt, kVersion);
    counter_ = 1;
    return {};
  }
  // The used idx was published but not recorded: the last batch is done.
  const uint16_t recorded = get<uint16_t>(r_ + kUsedIdxAt);
  uint16_t batch = static_cast<uint16_t>(ringUsedIdx - recorded);
  uint16_t i = get<uint16_t>(r_ + kLastBatchHeadAt);
  for (uint16_t k = 0; k < batch && k < size_ && i < size_; ++k) {
    put<uint8_t>(desc(i) + kInflightAt, 0);
    i = get<uint16_t>(desc(i) + kNextAt);
  }
  put<uint16_t>(r_ + kUsedIdxAt, ringUsedIdx);

  std::vector<std::pair<uint64_t, uint16_t>> found;
  uint64_t maxCounter = 0;
  for (uint32_t h = 0; h < size_; ++h) {
    const auto head = static_cast<uint16_t>(h);
    const uint64_t c = get<uint64_t>(desc(head) + kCounterAt);
    maxCounter = std::max(maxCounter, c);
    if (get<uint8_t>(desc(head) + kInflightAt) != 0) found.emplace_back(c, head);
  }
  counter_ = maxCounter + 1;
  std::sort(found.begin(), found.end());
  std::vector<uint16_t> heads;
  heads.reserve(found.size());
  for (auto [c, head] : found) heads.push_back(head);
  return heads;
}

void InflightRing::begin(uint16_t head) {
  put<uint64_t>(desc(head) + kCounterAt, counter_++);
  put<uint8_t>(desc(head) + kInflightAt, 1);
}

void InflightRing::linkBatch(uint16_t head) {
  put<uint16_t>(desc(head) + kNextAt, get<uint16_t>(r_ + kLastBatchHeadAt));
  put<uint16_t>(r_ + kLastBatchHeadAt, head);
}

void InflightRing::finish(uint16_t head, uint16_t usedIdx) {
  put<uint8_t>(desc(head) + kInflightAt, 0);
  put<uint16_t>(r_ + kUsedIdxAt, usedIdx);
}

}  // namespace offcore::virt
