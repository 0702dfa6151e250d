// virtio-blk (virtio 1.1 §5.2) as a VhostDevice.
//
// A request is: struct virtio_blk_outhdr (16 bytes, device-readable, maybe
// split over segments), the data, and one status byte, the chain's last
// device-writable byte. Like QEMU, data of IN/GET_ID is the writable bytes
// before the status, data of OUT/DISCARD/WRITE_ZEROES the readable bytes
// after the header; bytes of the other direction are ignored.
#include "virt/blk/virtio_blk.h"

#include <endian.h>
#include <linux/virtio_blk.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace offcore::virt {
namespace {

constexpr uint64_t kSector = 512;
constexpr uint32_t kMaxDiscardSectors = 1u << 22;  // 2 GiB per request
constexpr uint64_t kGatherMax = 1u << 20;          // requests up to this go through one copy

// Calls fn(ptr, len) for the bytes [from, to) of the chain's readable or
// writable stream (segments of that direction, in order). Stops early when fn
// returns false; returns false then.
template <typename Fn>
bool forEachPiece(const Chain& chain, bool writable, uint64_t from, uint64_t to, Fn&& fn) {
  uint64_t pos = 0;
  for (const Segment& s : chain.segments) {
    if (s.deviceWritable != writable) continue;
    uint64_t begin = std::max(pos, from);
    uint64_t end = std::min(pos + s.len, to);
    if (begin < end && !fn(s.data + (begin - pos), end - begin)) return false;
    pos += s.len;
    if (pos >= to) break;
  }
  return true;
}

void gather(const Chain& chain, uint64_t from, uint64_t len, uint8_t* out) {
  forEachPiece(chain, false, from, from + len, [&](uint8_t* p, uint64_t n) {
    std::memcpy(out, p, n);
    out += n;
    return true;
  });
}

void scatter(const Chain& chain, uint64_t from, const uint8_t* in, uint64_t len) {
  forEachPiece(chain, true, from, from + len, [&](uint8_t* p, uint64_t n) {
    std::memcpy(p, in, n);
    in += n;
    return true;
  });
}

class VirtioBlk final : public VhostDevice {
 public:
  VirtioBlk(BlockDevice& dev, const VirtioBlkOptions& opts) : dev_(dev), opts_(opts) {}

  uint64_t deviceFeatures() const override {
    uint64_t f = (1ull << VIRTIO_BLK_F_SEG_MAX) | (1ull << VIRTIO_BLK_F_BLK_SIZE) | (1ull << VIRTIO_BLK_F_FLUSH);
    if (opts_.numQueues > 1) f |= 1ull << VIRTIO_BLK_F_MQ;
    if (opts_.readOnly) {
      f |= 1ull << VIRTIO_BLK_F_RO;
    } else {
      f |= (1ull << VIRTIO_BLK_F_DISCARD) | (1ull << VIRTIO_BLK_F_WRITE_ZEROES);
    }
    return f;
  }

  uint16_t maxQueues() const override { return std::max<uint16_t>(opts_.numQueues, 1); }
  Coalescing coalescing() const override { return opts_.coalescing; }
  uint32_t pollUs() const override { return opts_.pollUs; }
  bool packedRing() const override { return true; }

  std::vector<uint8_t> configSpace(uint16_t numQueues) const override {
    virtio_blk_config c{};
    uint32_t bs = dev_.blockSize();
    c.capacity = htole64(dev_.sizeBytes() / kSector);
    c.seg_max = htole32(opts_.segMax);
    c.blk_size = htole32(bs);
    c.num_queues = htole16(numQueues == 0 ? maxQueues() : numQueues);
    uint32_t align = std::max<uint32_t>(bs / kSector, 1);
    uint32_t maxSectors = kMaxDiscardSectors - kMaxDiscardSectors % align;
    c.max_discard_sectors = htole32(maxSectors);
    c.max_discard_seg = htole32(1);
    c.discard_sector_alignment = htole32(align);
    c.max_write_zeroes_sectors = htole32(maxSectors);
    c.max_write_zeroes_seg = htole32(1);
    c.write_zeroes_may_unmap = 1;
    std::vector<uint8_t> out(sizeof c);
    std::memcpy(out.data(), &c, sizeof c);
    return out;
  }

  uint32_t handle(uint16_t /*queue*/, const Chain& chain) override {
    uint64_t readable = 0, writable = 0;
    uint8_t* status = nullptr;
    for (const Segment& s : chain.segments) {
      (s.deviceWritable ? writable : readable) += s.len;
      if (s.deviceWritable && s.len > 0) status = s.data + s.len - 1;
    }
    // No status byte: nowhere to answer. The guest gets the chain back empty.
    if (status == nullptr) return 0;
    auto reply = static_cast<uint32_t>(std::min<uint64_t>(writable, UINT32_MAX));
    *status = serve(chain, readable, writable - 1);
    return reply;
  }

 private:
  // inLen: writable bytes before the status byte.
  uint8_t serve(const Chain& chain, uint64_t readable, uint64_t inLen) {
    virtio_blk_outhdr hdr;
    if (readable < sizeof hdr) return VIRTIO_BLK_S_IOERR;
    gather(chain, 0, sizeof hdr, reinterpret_cast<uint8_t*>(&hdr));
    uint32_t type = le32toh(hdr.type);
    uint64_t sector = le64toh(hdr.sector);
    uint64_t outLen = readable - sizeof hdr;
    switch (type) {
      case VIRTIO_BLK_T_IN: return readWrite(chain, sector, 0, inLen, /*toGuest=*/true);
      case VIRTIO_BLK_T_OUT:
        if (opts_.readOnly) return VIRTIO_BLK_S_IOERR;
        return readWrite(chain, sector, sizeof hdr, outLen, /*toGuest=*/false);
      case VIRTIO_BLK_T_FLUSH: return dev_.flush().ok() ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR;
      case VIRTIO_BLK_T_GET_ID: {
        uint8_t id[VIRTIO_BLK_ID_BYTES] = {};
        std::memcpy(id, opts_.serial.data(), std::min(opts_.serial.size(), sizeof id));
        scatter(chain, 0, id, std::min<uint64_t>(inLen, sizeof id));
        return VIRTIO_BLK_S_OK;
      }
      case VIRTIO_BLK_T_DISCARD:
      case VIRTIO_BLK_T_WRITE_ZEROES:
        if (opts_.readOnly) return VIRTIO_BLK_S_UNSUPP;
        return zeroRange(chain, type == VIRTIO_BLK_T_DISCARD, outLen);
      default: return VIRTIO_BLK_S_UNSUPP;
    }
  }

  // The byte range of a request, or nullopt when it is not whole sectors,
  // not whole device blocks, or not inside the device.
  std::optional<uint64_t> checkRange(uint64_t sector, uint64_t len) const {
    uint64_t capSectors = dev_.sizeBytes() / kSector;
    uint32_t bs = dev_.blockSize();
    if (len % kSector != 0 || sector > capSectors || len / kSector > capSectors - sector) return std::nullopt;
    uint64_t offset = sector * kSector;
    if (bs == 0 || offset % bs != 0 || len % bs != 0) return std::nullopt;
    return offset;
  }

  // IN (toGuest) reads into the writable stream [from, from + len); OUT
  // writes the readable stream's [from, from + len).
  uint8_t readWrite(const Chain& chain, uint64_t sector, uint64_t from, uint64_t len, bool toGuest) {
    auto offset = checkRange(sector, len);
    if (!offset) return VIRTIO_BLK_S_IOERR;
    if (len == 0) return VIRTIO_BLK_S_OK;
    uint32_t bs = dev_.blockSize();
    // One look at the pieces: are they whole blocks, and how many
    // host-contiguous runs do they make? Guest pages are rarely
    // host-contiguous (a 128 KiB request is often 32 runs); up to
    // kGatherMax, one copy and one device call beat a call per run (a
    // syscall, or a command on the wire, each). Pieces that are not whole
    // blocks always go through the buffer.
    bool aligned = true;
    int runs = 0;
    uint8_t* end = nullptr;
    forEachPiece(chain, toGuest, from, from + len, [&](uint8_t* p, uint64_t n) {
      aligned = aligned && n % bs == 0;
      if (p != end) ++runs;
      end = p + n;
      return aligned;
    });
    if (!aligned || (runs > 1 && len <= kGatherMax)) return bounce(chain, *offset, from, len, toGuest);
    // One device call per run of host-contiguous pieces.
    uint64_t off = *offset;
    uint8_t* run = nullptr;
    uint64_t runLen = 0;
    bool ok = true;
    auto flushRun = [&] {
      if (runLen == 0) return true;
      Status s = toGuest ? dev_.read(off, run, runLen) : dev_.write(off, run, runLen);
      off += runLen;
      runLen = 0;
      return s.ok();
    };
    forEachPiece(chain, toGuest, from, from + len, [&](uint8_t* p, uint64_t n) {
      if (runLen > 0 && run + runLen == p) {
        runLen += n;
        return true;
      }
      if (!flushRun()) return ok = false;
      run = p;
      runLen = n;
      return true;
    });
    if (ok) ok = flushRun();
    return ok ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR;
  }

  // Segments that are not whole device blocks go through one buffer.
  uint8_t bounce(const Chain& chain, uint64_t offset, uint64_t from, uint64_t len, bool toGuest) {
    // One buffer per queue thread, at most kGatherMax: a larger request
    // goes through it in pieces (whole blocks: kGatherMax is a multiple of
    // any block size), so no guest can make a thread hold more.
    thread_local std::vector<uint8_t> buf;
    if (buf.size() < std::min(len, kGatherMax)) buf.resize(kGatherMax);
    for (uint64_t done = 0; done < len;) {
      uint64_t n = std::min(len - done, kGatherMax);
      if (toGuest) {
        if (!dev_.read(offset + done, buf.data(), n).ok()) return VIRTIO_BLK_S_IOERR;
        scatter(chain, from + done, buf.data(), n);
      } else {
        gather(chain, from + done, n, buf.data());
        if (!dev_.write(offset + done, buf.data(), n).ok()) return VIRTIO_BLK_S_IOERR;
      }
      done += n;
    }
    return VIRTIO_BLK_S_OK;
  }

  uint8_t zeroRange(const Chain& chain, bool discard, uint64_t outLen) {
    virtio_blk_discard_write_zeroes seg;
    // max_discard_seg and max_write_zeroes_seg are 1.
    if (outLen != sizeof seg) return VIRTIO_BLK_S_IOERR;
    gather(chain, sizeof(virtio_blk_outhdr), sizeof seg, reinterpret_cast<uint8_t*>(&seg));
    uint32_t flags = le32toh(seg.flags);
    uint32_t sectors = le32toh(seg.num_sectors);
    if (flags & ~uint32_t{VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP}) return VIRTIO_BLK_S_UNSUPP;
    if (discard && flags != 0) return VIRTIO_BLK_S_UNSUPP;
    if (sectors > kMaxDiscardSectors) return VIRTIO_BLK_S_IOERR;
    uint64_t len = uint64_t{sectors} * kSector;
    auto offset = checkRange(le64toh(seg.sector), len);
    if (!offset) return VIRTIO_BLK_S_IOERR;
    if (len == 0) return VIRTIO_BLK_S_OK;
    // BlockDevice::discard reads back as zeroes, so it serves an unmapping
    // WRITE_ZEROES too.
    bool unmap = discard || (flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
    Status s = unmap ? dev_.discard(*offset, len) : dev_.writeZeroes(*offset, len);
    return s.ok() ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR;
  }

  BlockDevice& dev_;
  VirtioBlkOptions opts_;
};

}  // namespace

std::unique_ptr<VhostDevice> makeVirtioBlk(BlockDevice& dev, const VirtioBlkOptions& opts) {
  return std::make_unique<VirtioBlk>(dev, opts);
}

}  // namespace offcore::virt
