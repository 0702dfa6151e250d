#include "nvme/pdu.h"

#include <algorithm>
#include <cstring>

#include "base/crc32c.h"

namespace offcore::nvme {
namespace {

uint32_t alignUp(uint32_t v, uint32_t a) { return a <= 1 ? v : (v + a - 1) / a * a; }

bool legalFor(Role role, uint8_t type) {
  if (role == Role::kTarget) {
    return type == kIcReq || type == kH2CTermReq || type == kCapsuleCmd || type == kH2CData;
  }
  return type == kIcResp || type == kC2HTermReq || type == kCapsuleResp || type == kC2HData || type == kR2T;
}

bool carriesData(uint8_t type) { return type == kCapsuleCmd || type == kH2CData || type == kC2HData; }

FatalError fatal(uint16_t fes, uint32_t fei, const uint8_t* h, size_t avail, std::string reason) {
  FatalError e;
  e.fes = fes;
  e.fei = fei;
  size_t hlen = std::min<size_t>(avail, std::max<size_t>(h[2], kCommonHeaderSize));
  e.header.assign(h, h + std::min(hlen, kTermMaxHeaderCopy));
  e.reason = std::move(reason);
  return e;
}

// Finishes a PDU whose header (common + specific) is in `hdr`: fixes PDO
// and PLEN, sets the digest flags, then appends the header digest, padding,
// data and data digest. PLEN and PDO are part of what the header digest
// covers, so they are final before it is computed.
// Everything of a PDU before its data: the header with PDO and PLEN final,
// the header digest, and the padding up to PDO.
std::vector<uint8_t> assembleHead(std::vector<uint8_t> hdr, size_t len, Digests d, uint32_t alignment) {
  const uint32_t hlen = static_cast<uint32_t>(hdr.size());
  const uint32_t hd = d.header ? kDigestSize : 0;
  const uint32_t dd = d.data && len > 0 ? kDigestSize : 0;
  uint32_t pdo = 0, plen = hlen + hd;
  if (len > 0) {
    pdo = alignUp(hlen + hd, alignment);
    plen = pdo + static_cast<uint32_t>(len) + dd;
  }
  if (hd) hdr[1] |= kFlagHdgst;
  if (dd) hdr[1] |= kFlagDdgst;
  hdr[3] = static_cast<uint8_t>(pdo);
  putLe32(hdr.data() + 4, plen);
  std::vector<uint8_t> out;
  out.reserve(plen);
  out = std::move(hdr);
  uint8_t le[4];
  if (hd) {
    putLe32(le, offcore::crc32c(0, out.data(), hlen));
    out.insert(out.end(), le, le + 4);
  }
  if (len > 0) out.resize(pdo, 0);
  return out;
}

// What follows a PDU's head: its data and, with d.data, the data digest.
std::vector<uint8_t> appendData(std::vector<uint8_t> out, const uint8_t* data, size_t len, Digests d) {
  if (len == 0) return out;
  out.insert(out.end(), data, data + len);
  if (d.data) {
    uint8_t le[4];
    putLe32(le, dataDigest(data, len));
    out.insert(out.end(), le, le + 4);
  }
  return out;
}

std::vector<uint8_t> assemble(std::vector<uint8_t> hdr, const uint8_t* data, size_t len, Digests d,
                              uint32_t alignment) {
  return appendData(assembleHead(std::move(hdr), len, d, alignment), data, len, d);
}

std::vector<uint8_t> header(uint8_t type, uint8_t hlen, Digests d) {
  std::vector<uint8_t> h(hlen, 0);
  h[0] = type;
  h[2] = hlen;
  (void)d;
  return h;
}

}  // namespace

uint8_t expectedHlen(uint8_t type) {
  switch (type) {
    case kIcReq:
    case kIcResp: return kIcHlen;
    case kH2CTermReq:
    case kC2HTermReq: return kTermHlen;
    case kCapsuleCmd: return kCapsuleCmdHlen;
    case kCapsuleResp: return kCapsuleRespHlen;
    case kH2CData:
    case kC2HData: return kDataHlen;
    case kR2T: return kR2THlen;
    default: return 0;
  }
}

Cqe Cqe::make(uint16_t cid, uint16_t status, uint32_t dw0, uint16_t sqhd, uint16_t sqid, uint32_t dw1) {
  Cqe c;
  putLe32(c.b, dw0);
  putLe32(c.b + 4, dw1);
  putLe16(c.b + 8, sqhd);
  putLe16(c.b + 10, sqid);
  putLe16(c.b + 12, cid);
  putLe16(c.b + 14, static_cast<uint16_t>((status & 0x7FFF) << 1));  // phase tag 0 on fabrics
  return c;
}

void PduParser::feed(const uint8_t* data, size_t len) {
  if (pos_ > 0 && pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  }
  buf_.insert(buf_.end(), data, data + len);
}

std::optional<FatalError> PduParser::checkHeader(const uint8_t* h) const {
  const uint8_t type = h[0], flags = h[1], hlen = h[2], pdo = h[3];
  const uint32_t plen = getLe32(h + 4);
  size_t avail = buffered();
  if (!legalFor(role_, type)) return fatal(kFesInvalidHeaderField, 0, h, avail, "unexpected PDU type");
  if (hlen != expectedHlen(type)) return fatal(kFesInvalidHeaderField, 2, h, avail, "wrong HLEN");
  if (type == kIcReq || type == kIcResp) {
    if (flags != 0) return fatal(kFesInvalidHeaderField, 1, h, avail, "flags on an IC PDU");
    if (pdo != 0) return fatal(kFesInvalidHeaderField, 3, h, avail, "PDO on an IC PDU");
    if (plen != kIcHlen) return fatal(kFesInvalidHeaderField, 4, h, avail, "IC PLEN must be 128");
    return std::nullopt;
  }
  if (type == kH2CTermReq || type == kC2HTermReq) {
    if (plen < kTermHlen || plen > kTermHlen + kTermMaxHeaderCopy) {
      return fatal(kFesInvalidHeaderField, 4, h, avail, "bad TermReq PLEN");
    }
    return std::nullopt;
  }
  const bool want_hd = limits_.header_digest;
  if (((flags & kFlagHdgst) != 0) != want_hd) {
    return fatal(kFesInvalidHeaderField, 1, h, avail, "HDGSTF does not match the negotiated digest");
  }
  const uint32_t hd = want_hd ? kDigestSize : 0;
  if (plen < hlen + hd) return fatal(kFesInvalidHeaderField, 4, h, avail, "PLEN below HLEN");
  const bool has_data = plen > hlen + hd;
  if (!carriesData(type)) {
    if (has_data || pdo != 0 || (flags & kFlagDdgst)) {
      return fatal(kFesInvalidHeaderField, 4, h, avail, "data on a PDU type that carries none");
    }
    return std::nullopt;
  }
  if (!has_data) {
    if (type != kCapsuleCmd) return fatal(kFesInvalidHeaderField, 4, h, avail, "data PDU without data");
    if (flags & kFlagDdgst) return fatal(kFesInvalidHeaderField, 1, h, avail, "DDGSTF without data");
    return std::nullopt;
  }
  if (((flags & kFlagDdgst) != 0) != limits_.data_digest) {
    return fatal(kFesInvalidHeaderField, 1, h, avail, "DDGSTF does not match the negotiated digest");
  }
  const uint32_t dd = limits_.data_digest ? kDigestSize : 0;
  if (pdo < hlen + hd || pdo % limits_.data_alignment != 0 || static_cast<uint64_t>(pdo) + dd >= plen) {
    return fatal(kFesInvalidHeaderField, 3, h, avail, "PDO out of place or misaligned");
  }
  const uint32_t data_len = plen - pdo - dd;
  const uint32_t limit = type == kCapsuleCmd ? limits_.max_capsule_data : limits_.max_data_pdu;
  if (data_len > limit) return fatal(kFesDataLimitExceeded, 4, h, avail, "PDU data above the negotiated limit");
  return std::nullopt;
}

std::optional<Pdu> PduParser::next(std::optional<FatalError>& error) {
  if (buffered() < kCommonHeaderSize) return std::nullopt;
  const uint8_t* h = buf_.data() + pos_;
  if (auto e = checkHeader(h)) {
    error = std::move(e);
    return std::nullopt;
  }
  const uint32_t plen = getLe32(h + 4);
  if (buffered() < plen) {
    // Keep the unread tail at the front so the buffer does not grow without bound.
    if (pos_ > 0 && pos_ > buf_.size() / 2) {
      buf_.erase(buf_.begin(), buf_.begin() + static_cast<long>(pos_));
      pos_ = 0;
    }
    return std::nullopt;
  }
  Pdu p;
  p.type = h[0];
  p.flags = h[1];
  p.hlen = h[2];
  p.pdo = h[3];
  p.plen = plen;
  p.header.assign(h, h + p.hlen);
  const bool hd =
      (p.flags & kFlagHdgst) && p.type != kIcReq && p.type != kIcResp && p.type != kH2CTermReq && p.type != kC2HTermReq;
  if (hd) {
    uint32_t want = getLe32(h + p.hlen);
    if (offcore::crc32c(0, h, p.hlen) != want) {
      error = fatal(kFesHeaderDigestError, 0, h, buffered(), "header digest mismatch");
      return std::nullopt;
    }
  }
  if (p.type == kH2CTermReq || p.type == kC2HTermReq) {
    p.data.assign(h + p.hlen, h + plen);  // the peer's copy of our errored header
  } else if (plen > p.hlen + (hd ? kDigestSize : 0u) && p.pdo != 0) {
    const uint32_t dd = (p.flags & kFlagDdgst) ? kDigestSize : 0;
    const uint32_t len = plen - p.pdo - dd;
    p.data = std::move(spare_);  // assign() reuses its capacity
    spare_.clear();
    p.data.assign(h + p.pdo, h + p.pdo + len);
    if (dd) p.data_digest_ok = offcore::crc32c(0, h + p.pdo, len) == getLe32(h + p.pdo + len);
  }
  pos_ += plen;
  return p;
}

std::vector<uint8_t> buildIcReq(uint8_t hpda, uint8_t dgst, uint32_t maxr2t) {
  std::vector<uint8_t> h(kIcHlen, 0);
  h[0] = kIcReq;
  h[2] = kIcHlen;
  putLe32(h.data() + 4, kIcHlen);
  putLe16(h.data() + 8, 0);  // PFV 1.0
  h[10] = hpda;
  h[11] = dgst;
  putLe32(h.data() + 12, maxr2t);
  return h;
}

std::vector<uint8_t> buildIcResp(uint8_t cpda, uint8_t dgst, uint32_t maxh2cdata) {
  std::vector<uint8_t> h(kIcHlen, 0);
  h[0] = kIcResp;
  h[2] = kIcHlen;
  putLe32(h.data() + 4, kIcHlen);
  h[10] = cpda;
  h[11] = dgst;
  putLe32(h.data() + 12, maxh2cdata);
  return h;
}

std::vector<uint8_t> buildCapsuleCmd(const Sqe& sqe, const uint8_t* data, size_t len, Digests d, uint32_t alignment) {
  auto h = header(kCapsuleCmd, kCapsuleCmdHlen, d);
  std::copy(sqe.b, sqe.b + kSqeSize, h.begin() + kCommonHeaderSize);
  return assemble(std::move(h), data, len, d, alignment);
}

std::vector<uint8_t> buildCapsuleResp(const Cqe& cqe, Digests d) {
  auto h = header(kCapsuleResp, kCapsuleRespHlen, d);
  std::copy(cqe.b, cqe.b + kCqeSize, h.begin() + kCommonHeaderSize);
  return assemble(std::move(h), nullptr, 0, d, 4);
}

std::vector<uint8_t> buildData(PduType type, uint16_t cccid, uint16_t ttag, uint32_t offset, const uint8_t* data,
                               size_t len, bool last, bool success, Digests d, uint32_t alignment) {
  return appendData(buildDataHead(type, cccid, ttag, offset, len, last, success, d, alignment), data, len, d);
}

std::vector<uint8_t> buildDataHead(PduType type, uint16_t cccid, uint16_t ttag, uint32_t offset, size_t len, bool last,
                                   bool success, Digests d, uint32_t alignment) {
  auto h = header(type, kDataHlen, d);
  if (last) h[1] |= kFlagLastPdu;
  if (success) h[1] |= kFlagSuccess;
  putLe16(h.data() + 8, cccid);
  putLe16(h.data() + 10, ttag);
  putLe32(h.data() + 12, offset);
  putLe32(h.data() + 16, static_cast<uint32_t>(len));
  return assembleHead(std::move(h), len, d, alignment);
}

uint32_t dataDigest(const uint8_t* data, size_t len) { return offcore::crc32c(0, data, len); }

std::vector<uint8_t> buildR2T(uint16_t cccid, uint16_t ttag, uint32_t offset, uint32_t len, Digests d) {
  auto h = header(kR2T, kR2THlen, d);
  putLe16(h.data() + 8, cccid);
  putLe16(h.data() + 10, ttag);
  putLe32(h.data() + 12, offset);
  putLe32(h.data() + 16, len);
  return assemble(std::move(h), nullptr, 0, d, 4);
}

std::vector<uint8_t> buildTermReq(PduType type, uint16_t fes, uint32_t fei, const std::vector<uint8_t>& errored) {
  const size_t n = std::min(errored.size(), kTermMaxHeaderCopy);
  std::vector<uint8_t> out(kTermHlen + n, 0);
  out[0] = type;
  out[2] = kTermHlen;
  putLe32(out.data() + 4, static_cast<uint32_t>(out.size()));
  putLe16(out.data() + 8, fes);
  putLe32(out.data() + 10, fei);
  if (n > 0) std::memcpy(out.data() + kTermHlen, errored.data(), n);
  return out;
}

}  // namespace offcore::nvme
