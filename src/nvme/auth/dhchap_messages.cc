#include "nvme/auth/dhchap_messages.h"

#include <algorithm>

#include "nvme/spec.h"

namespace offcore::nvme::auth {
namespace {

Error payload(const std::string& why) {
  return makeError("bad authentication message: " + why, kReasonIncorrectPayload);
}
Error unexpected(const std::string& why) {
  return makeError("unexpected authentication message: " + why, kReasonIncorrectMessage);
}

bool validHl(size_t hl) { return hl == 32 || hl == 48 || hl == 64; }

Bytes header(size_t size, uint8_t type, uint8_t id, uint16_t tid) {
  Bytes b(size, 0);
  b[0] = type;
  b[1] = id;
  putLe16(b.data() + 4, tid);
  return b;
}

Result<AuthMessage> parseNegotiate(const uint8_t* p, size_t len, bool exact) {
  if (len < 8) return payload("AUTH_Negotiate shorter than 8 bytes");
  Negotiate m;
  m.tid = getLe16(p + 4);
  m.sc_c = p[6];
  uint8_t napd = p[7];
  if (napd == 0) return payload("AUTH_Negotiate lists no protocol (NAPD 0)");
  size_t want = 8 + napd * kNegotiateDescriptorSize;
  if (len < want || (exact && len != want)) {
    return payload("AUTH_Negotiate is " + std::to_string(len) + " bytes, NAPD " + std::to_string(napd) + " makes it " +
                   std::to_string(want));
  }
  for (uint8_t i = 0; i < napd; ++i) {
    const uint8_t* d = p + 8 + i * kNegotiateDescriptorSize;
    if (d[0] != kAuthIdDhchap || m.has_dhchap) continue;
    if (d[2] > kMaxIdList || d[3] > kMaxIdList) return payload("HALEN or DHLEN above 30");
    m.has_dhchap = true;
    m.hashes.assign(d + 4, d + 4 + d[2]);
    m.dhgroups.assign(d + 4 + kMaxIdList, d + 4 + kMaxIdList + d[3]);
  }
  return AuthMessage(m);
}

Result<AuthMessage> parseChallenge(const uint8_t* p, size_t len, bool exact) {
  if (len < kAuthHeaderSize) return payload("Challenge shorter than 16 bytes");
  Challenge m;
  m.tid = getLe16(p + 4);
  size_t hl = p[6];
  m.hash = p[8];
  m.dhgroup = p[9];
  size_t dhvlen = getLe16(p + 10);
  m.seqnum = getLe32(p + 12);
  if (!validHl(hl)) return payload("Challenge HL " + std::to_string(hl));
  size_t want = kAuthHeaderSize + hl + dhvlen;
  if (len < want || (exact && len != want)) return payload("Challenge length does not match HL and DHVLEN");
  m.cval.assign(p + 16, p + 16 + hl);
  m.dhv.assign(p + 16 + hl, p + want);
  return AuthMessage(m);
}

Result<AuthMessage> parseReply(const uint8_t* p, size_t len, bool exact) {
  if (len < kAuthHeaderSize) return payload("Reply shorter than 16 bytes");
  Reply m;
  m.tid = getLe16(p + 4);
  size_t hl = p[6];
  m.cvalid = p[8];
  size_t dhvlen = getLe16(p + 10);
  m.seqnum = getLe32(p + 12);
  if (!validHl(hl)) return payload("Reply HL " + std::to_string(hl));
  if (m.cvalid > 1) return payload("Reply CVALID " + std::to_string(m.cvalid));
  size_t want = kAuthHeaderSize + 2 * hl + dhvlen;
  if (len < want || (exact && len != want)) return payload("Reply length does not match HL and DHVLEN");
  m.response.assign(p + 16, p + 16 + hl);
  m.cval.assign(p + 16 + hl, p + 16 + 2 * hl);
  m.dhv.assign(p + 16 + 2 * hl, p + want);
  return AuthMessage(m);
}

Result<AuthMessage> parseSuccess1(const uint8_t* p, size_t len, bool exact) {
  if (len < kAuthHeaderSize) return payload("Success1 shorter than 16 bytes");
  Success1 m;
  m.tid = getLe16(p + 4);
  m.hl = p[6];
  m.rvalid = p[8] & 1;
  size_t want = kAuthHeaderSize + (m.rvalid ? m.hl : 0);
  if (m.rvalid && !validHl(m.hl)) return payload("Success1 HL " + std::to_string(m.hl));
  if (len < want || (exact && len != want && len != kAuthHeaderSize + m.hl)) return payload("Success1 length");
  if (m.rvalid) m.rval.assign(p + 16, p + want);
  return AuthMessage(m);
}

}  // namespace

const char* failureReasonText(uint8_t reason) {
  switch (reason) {
    case kReasonFailed: return "authentication failed";
    case kReasonProtocolUnusable: return "authentication protocol not usable";
    case kReasonScMismatch: return "secure channel concatenation mismatch";
    case kReasonHashUnusable: return "hash function not usable";
    case kReasonDhGroupUnusable: return "DH group not usable";
    case kReasonIncorrectPayload: return "incorrect payload";
    case kReasonIncorrectMessage: return "incorrect protocol message";
    default: return "unknown reason";
  }
}

Result<AuthMessage> parseAuthMessage(const uint8_t* p, size_t len, bool exact) {
  if (len < 8) return payload("shorter than 8 bytes");
  if (len > kMaxAuthMessage) return payload("longer than " + std::to_string(kMaxAuthMessage) + " bytes");
  uint8_t type = p[0], id = p[1];
  if (type == kAuthTypeCommon) {
    if (id == kMsgNegotiate) return parseNegotiate(p, len, exact);
    if (id == kMsgFailure1 || id == kMsgFailure2) {
      if (exact && len != 8) return payload("AUTH_Failure is not 8 bytes");
      return AuthMessage(Failure{getLe16(p + 4), id, p[6], p[7]});
    }
    return unexpected("common message id " + std::to_string(id));
  }
  if (type != kAuthTypeDhchap) return unexpected("auth type " + std::to_string(type));
  switch (id) {
    case kMsgChallenge: return parseChallenge(p, len, exact);
    case kMsgReply: return parseReply(p, len, exact);
    case kMsgSuccess1: return parseSuccess1(p, len, exact);
    case kMsgSuccess2:
      if (len < kAuthHeaderSize || (exact && len != kAuthHeaderSize)) return payload("Success2 is not 16 bytes");
      return AuthMessage(Success2{getLe16(p + 4)});
    default: return unexpected("DH-HMAC-CHAP message id " + std::to_string(id));
  }
}

Bytes buildNegotiate(const Negotiate& m) {
  Bytes b = header(8 + kNegotiateDescriptorSize, kAuthTypeCommon, kMsgNegotiate, m.tid);
  b[6] = m.sc_c;
  b[7] = 1;
  uint8_t* d = b.data() + 8;
  d[0] = kAuthIdDhchap;
  d[2] = static_cast<uint8_t>(std::min(m.hashes.size(), kMaxIdList));
  d[3] = static_cast<uint8_t>(std::min(m.dhgroups.size(), kMaxIdList));
  std::copy_n(m.hashes.begin(), d[2], d + 4);
  std::copy_n(m.dhgroups.begin(), d[3], d + 4 + kMaxIdList);
  return b;
}

Bytes buildChallenge(const Challenge& m) {
  Bytes b = header(kAuthHeaderSize + m.cval.size() + m.dhv.size(), kAuthTypeDhchap, kMsgChallenge, m.tid);
  b[6] = static_cast<uint8_t>(m.cval.size());
  b[8] = m.hash;
  b[9] = m.dhgroup;
  putLe16(b.data() + 10, static_cast<uint16_t>(m.dhv.size()));
  putLe32(b.data() + 12, m.seqnum);
  std::copy(m.cval.begin(), m.cval.end(), b.begin() + 16);
  std::copy(m.dhv.begin(), m.dhv.end(), b.begin() + 16 + static_cast<long>(m.cval.size()));
  return b;
}

Bytes buildReply(const Reply& m) {
  size_t hl = m.response.size();
  Bytes b = header(kAuthHeaderSize + 2 * hl + m.dhv.size(), kAuthTypeDhchap, kMsgReply, m.tid);
  b[6] = static_cast<uint8_t>(hl);
  b[8] = m.cvalid;
  putLe16(b.data() + 10, static_cast<uint16_t>(m.dhv.size()));
  putLe32(b.data() + 12, m.seqnum);
  std::copy(m.response.begin(), m.response.end(), b.begin() + 16);
  if (m.cvalid) std::copy_n(m.cval.begin(), std::min(hl, m.cval.size()), b.begin() + 16 + static_cast<long>(hl));
  std::copy(m.dhv.begin(), m.dhv.end(), b.begin() + 16 + static_cast<long>(2 * hl));
  return b;
}

Bytes buildSuccess1(const Success1& m) {
  Bytes b = header(kAuthHeaderSize + (m.rvalid ? m.rval.size() : 0), kAuthTypeDhchap, kMsgSuccess1, m.tid);
  b[6] = m.hl;  // the Linux host reads HL even without RVALID
  b[8] = m.rvalid ? 1 : 0;
  if (m.rvalid) std::copy(m.rval.begin(), m.rval.end(), b.begin() + 16);
  return b;
}

Bytes buildSuccess2(const Success2& m) { return header(kAuthHeaderSize, kAuthTypeDhchap, kMsgSuccess2, m.tid); }

Bytes buildFailure(const Failure& m) {
  Bytes b = header(8, kAuthTypeCommon, m.id, m.tid);
  b[6] = m.rescode;
  b[7] = m.reason;
  return b;
}

}  // namespace offcore::nvme::auth
