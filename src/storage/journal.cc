#include "storage/journal.h"

#include <cerrno>
#include <cstring>

#include "base/crc32c.h"

namespace offcore {
namespace {

class Writer {
 public:
  void u8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u16(uint16_t v) { le(v, 2); }
  void u32(uint32_t v) { le(v, 4); }
  void u64(uint64_t v) { le(v, 8); }
  void str(const std::string& s) {
    u16(static_cast<uint16_t>(s.size()));
    out_.append(s, 0, static_cast<uint16_t>(s.size()));
  }
  std::string& bytes() { return out_; }

 private:
  void le(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out_.push_back(static_cast<char>(v >> (8 * i)));
  }
  std::string out_;
};

class Reader {
 public:
  Reader(const char* p, size_t n) : p_(reinterpret_cast<const uint8_t*>(p)), n_(n) {}
  uint8_t u8() { return static_cast<uint8_t>(le(1)); }
  uint16_t u16() { return static_cast<uint16_t>(le(2)); }
  uint32_t u32() { return static_cast<uint32_t>(le(4)); }
  uint64_t u64() { return le(8); }
  std::string str() {
    size_t len = u16();
    if (!need(len)) return {};
    std::string s(reinterpret_cast<const char*>(p_ + pos_), len);
    pos_ += len;
    return s;
  }
  // True if count items of at least item_bytes each can still follow.
  bool fits(uint64_t count, uint64_t item_bytes) {
    if (count > (n_ - pos_) / item_bytes) failed_ = true;
    return !failed_;
  }
  bool ok() const { return !failed_; }
  bool done() const { return !failed_ && pos_ == n_; }

 private:
  bool need(size_t k) {
    if (failed_ || n_ - pos_ < k) failed_ = true;
    return !failed_;
  }
  uint64_t le(int k) {
    if (!need(static_cast<size_t>(k))) return 0;
    uint64_t v = 0;
    for (int i = 0; i < k; ++i) v |= static_cast<uint64_t>(p_[pos_ + i]) << (8 * i);
    pos_ += static_cast<size_t>(k);
    return v;
  }
  const uint8_t* p_;
  size_t n_;
  size_t pos_ = 0;
  bool failed_ = false;
};

uint32_t loadU32(const char* p) {
  Reader r(p, 4);
  return r.u32();
}

void encodePayload(const MetaRecord& r, Writer& w) {
  switch (r.type) {
    case RecordType::kCreate:
      w.u64(r.new_id);
      w.str(r.name);
      w.u64(r.size);
      break;
    case RecordType::kDelete: w.u64(r.id); break;
    case RecordType::kResize:
      w.u64(r.id);
      w.u64(r.size);
      break;
    case RecordType::kSnapshot:
    case RecordType::kClone:
      w.u64(r.id);
      w.u64(r.new_id);
      w.str(r.name);
      break;
    case RecordType::kMap:
      w.u64(r.id);
      w.u64(r.vcluster);
      w.u64(r.pcluster);
      break;
    case RecordType::kUnmap:
      w.u64(r.id);
      w.u64(r.vcluster);
      w.u8(r.zero ? 1 : 0);
      break;
    case RecordType::kSetHosts:
      w.u64(r.id);
      w.u32(static_cast<uint32_t>(r.hosts.size()));
      for (const auto& h : r.hosts) w.str(h);
      break;
  }
}

Result<MetaRecord> decodePayload(uint16_t type, uint64_t seq, const char* p, size_t n) {
  MetaRecord r;
  r.type = static_cast<RecordType>(type);
  r.seq = seq;
  Reader in(p, n);
  switch (r.type) {
    case RecordType::kCreate:
      r.new_id = in.u64();
      r.name = in.str();
      r.size = in.u64();
      break;
    case RecordType::kDelete: r.id = in.u64(); break;
    case RecordType::kResize:
      r.id = in.u64();
      r.size = in.u64();
      break;
    case RecordType::kSnapshot:
    case RecordType::kClone:
      r.id = in.u64();
      r.new_id = in.u64();
      r.name = in.str();
      break;
    case RecordType::kMap:
      r.id = in.u64();
      r.vcluster = in.u64();
      r.pcluster = in.u64();
      break;
    case RecordType::kUnmap: {
      r.id = in.u64();
      r.vcluster = in.u64();
      uint8_t z = in.u8();
      if (z > 1) return makeError("bad zero flag", EINVAL);
      r.zero = z == 1;
      break;
    }
    case RecordType::kSetHosts: {
      r.id = in.u64();
      uint32_t count = in.u32();
      if (!in.fits(count, 2)) break;
      for (uint32_t i = 0; i < count && in.ok(); ++i) r.hosts.push_back(in.str());
      break;
    }
    default: return makeError("unknown record type " + std::to_string(type), EINVAL);
  }
  if (!in.done()) return makeError(std::string("malformed ") + recordTypeName(r.type) + " record", EINVAL);
  return r;
}

// A whole, checksummed record at off, or an error saying why not.
Result<JournalEntry> recordAt(const std::string& bytes, uint64_t off) {
  if (bytes.size() - off < kRecordHeaderBytes) return makeError("partial header", EIO);
  const char* h = bytes.data() + off;
  Reader in(h, kRecordHeaderBytes);
  uint32_t magic = in.u32();
  uint32_t len = in.u32();
  uint64_t seq = in.u64();
  uint16_t type = in.u16();
  uint16_t reserved = in.u16();
  uint32_t stored = in.u32();
  if (magic != kRecordMagic) return makeError("bad magic", EIO);
  if (len > kMaxRecordPayload || reserved != 0) return makeError("bad header", EIO);
  if (bytes.size() - off - kRecordHeaderBytes < len) return makeError("partial payload", EIO);
  uint32_t crc = crc32c(crc32c(0, h, kRecordHeaderBytes - 4), h + kRecordHeaderBytes, len);
  if (crc != stored) return makeError("checksum mismatch", EIO);
  auto rec = decodePayload(type, seq, h + kRecordHeaderBytes, len);
  if (!rec.ok()) return rec.error();
  return JournalEntry{std::move(*rec), off};
}

}  // namespace

std::string encodeRecord(const MetaRecord& r) {
  Writer payload;
  encodePayload(r, payload);
  Writer w;
  w.u32(kRecordMagic);
  w.u32(static_cast<uint32_t>(payload.bytes().size()));
  w.u64(r.seq);
  w.u16(static_cast<uint16_t>(r.type));
  w.u16(0);
  std::string& out = w.bytes();
  uint32_t crc = crc32c(crc32c(0, out.data(), out.size()), payload.bytes().data(), payload.bytes().size());
  w.u32(crc);
  out += payload.bytes();
  return std::move(out);
}

Result<JournalScan> scanJournal(const std::string& bytes) {
  JournalScan scan;
  uint64_t off = 0;
  while (off < bytes.size()) {
    auto entry = recordAt(bytes, off);
    if (entry.ok()) {
      off += kRecordHeaderBytes + loadU32(bytes.data() + off + 4);
      scan.entries.push_back(std::move(*entry));
      continue;
    }
    // A crash mid-append leaves garbage only at the very end. Any valid
    // record further on means this one was damaged after it was written.
    for (uint64_t probe = off + 1; probe + kRecordHeaderBytes <= bytes.size(); ++probe) {
      if (loadU32(bytes.data() + probe) != kRecordMagic) continue;
      if (recordAt(bytes, probe).ok())
        return makeError("meta.journal: invalid record at offset " + std::to_string(off) + " (" +
                             entry.error().message + ") is followed by a valid record at offset " +
                             std::to_string(probe) + ": the journal is corrupt; restore the store from a backup",
                         EIO);
    }
    scan.torn_tail = true;
    break;
  }
  scan.valid_bytes = off;
  return scan;
}

std::string encodeCheckpoint(const MetaState& s, const ClusterSet& free) {
  Writer p;
  p.u64(s.last_seq);
  p.u64(s.next_id);
  p.u64(s.high_water);
  p.u64(free.ranges().size());
  for (const auto& [b, e] : free.ranges()) {
    p.u64(b);
    p.u64(e);
  }
  p.u64(s.volumes.size());
  for (const auto& [id, v] : s.volumes) {
    p.u64(v.id);
    p.str(v.name);
    p.u64(v.size_bytes);
    p.u8(v.read_only ? 1 : 0);
    p.u64(v.parent_id);
    p.u32(static_cast<uint32_t>(v.allowed_hosts.size()));
    for (const auto& h : v.allowed_hosts) p.str(h);
    p.u64(v.clones.size());
    for (uint64_t c : v.clones) p.u64(c);
    p.u64(v.map.size());
    for (const auto& [vc, pc] : v.map) {
      p.u64(vc);
      p.u64(pc);
    }
  }
  Writer w;
  w.u64(kCheckpointMagic);
  w.u32(kCheckpointVersion);
  w.u32(0);
  w.u64(p.bytes().size());
  std::string& out = w.bytes();
  w.u32(crc32c(crc32c(0, out.data(), out.size()), p.bytes().data(), p.bytes().size()));
  w.u32(0);
  out += p.bytes();
  return std::move(out);
}

Result<MetaState> decodeCheckpoint(const std::string& bytes) {
  auto bad = [](const std::string& why) {
    return makeError("meta.ckpt: " + why + "; the checkpoint is corrupt: restore the store from a backup", EIO);
  };
  if (bytes.size() < kCheckpointHeaderBytes) return bad("shorter than its header");
  Reader h(bytes.data(), kCheckpointHeaderBytes);
  uint64_t magic = h.u64();
  uint32_t version = h.u32();
  uint32_t flags = h.u32();
  uint64_t len = h.u64();
  uint32_t stored = h.u32();
  if (magic != kCheckpointMagic) return bad("bad magic");
  if (version != kCheckpointVersion || flags != 0) return bad("unsupported version " + std::to_string(version));
  if (len != bytes.size() - kCheckpointHeaderBytes) return bad("length does not match the file");
  const char* payload = bytes.data() + kCheckpointHeaderBytes;
  uint32_t crc = crc32c(crc32c(0, bytes.data(), 24), payload, len);
  if (crc != stored) return bad("checksum mismatch");

  MetaState s;
  Reader in(payload, len);
  s.last_seq = in.u64();
  s.next_id = in.u64();
  s.high_water = in.u64();
  uint64_t ranges = in.u64();
  if (!in.fits(ranges, 16)) return bad("truncated free list");
  for (uint64_t i = 0; i < ranges; ++i) {
    uint64_t b = in.u64(), e = in.u64();
    if (b >= e || e > kMaxPhysicalClusters) return bad("bad free range");
    s.free.insertRange(b, e);
  }
  uint64_t count = in.u64();
  if (!in.fits(count, 47)) return bad("truncated volume table");
  for (uint64_t i = 0; i < count && in.ok(); ++i) {
    VolumeRecord v;
    v.id = in.u64();
    v.name = in.str();
    v.size_bytes = in.u64();
    uint8_t ro = in.u8();
    if (ro > 1) return bad("bad read-only flag");
    v.read_only = ro == 1;
    v.parent_id = in.u64();
    uint32_t hosts = in.u32();
    if (!in.fits(hosts, 2)) break;
    for (uint32_t k = 0; k < hosts && in.ok(); ++k) v.allowed_hosts.push_back(in.str());
    uint64_t clones = in.u64();
    if (!in.fits(clones, 8)) break;
    for (uint64_t k = 0; k < clones; ++k) v.clones.insert(in.u64());
    uint64_t entries = in.u64();
    if (!in.fits(entries, 16)) break;
    for (uint64_t k = 0; k < entries; ++k) {
      uint64_t vc = in.u64();
      if (!v.map.emplace(vc, in.u64()).second) return bad("a cluster is mapped twice in one volume");
    }
    if (!s.volumes.emplace(v.id, std::move(v)).second) return bad("volume id used twice");
  }
  if (!in.done()) return bad("malformed payload");
  s.rebuildDerived();
  return s;
}

Result<uint64_t> replayJournal(MetaState& s, const JournalScan& scan) {
  uint64_t applied = 0;
  for (size_t i = 0; i < scan.entries.size(); ++i) {
    const JournalEntry& e = scan.entries[i];
    const std::string where =
        "meta.journal: record seq " + std::to_string(e.record.seq) + " at offset " + std::to_string(e.offset);
    if (i > 0 && e.record.seq != scan.entries[i - 1].record.seq + 1)
      return makeError(where + " follows seq " + std::to_string(scan.entries[i - 1].record.seq) +
                           ": records are missing; restore the store from a backup",
                       EIO);
    if (e.record.seq <= s.last_seq) continue;
    if (e.record.seq != s.last_seq + 1)
      return makeError(where + " does not follow the checkpoint's seq " + std::to_string(s.last_seq) +
                           ": records are missing; restore the store from a backup",
                       EIO);
    Status st = applyRecord(s, e.record, nullptr);
    if (!st.ok())
      return makeError(where + " (" + recordTypeName(e.record.type) + ") does not apply: " + st.error().message +
                           "; the metadata is corrupt",
                       EIO);
    ++applied;
  }
  return applied;
}

}  // namespace offcore
