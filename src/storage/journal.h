// The on-disk metadata format (docs/STORAGE.md): journal records and the
// checkpoint, their encoders, and the recovery parsers. The parsers take
// untrusted bytes (fuzz/journal_fuzz.cc) and never crash or over-allocate.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"
#include "storage/meta_state.h"

namespace offcore {

inline constexpr uint32_t kRecordMagic = 0x4A52434F;  // "OCRJ" little-endian
inline constexpr size_t kRecordHeaderBytes = 24;
inline constexpr uint32_t kMaxRecordPayload = 1u << 20;
inline constexpr uint64_t kCheckpointMagic = 0x31305450434B434FULL;  // "OCKCPT01"
inline constexpr size_t kCheckpointHeaderBytes = 32;
inline constexpr uint32_t kCheckpointVersion = 1;

// A whole framed record (header + payload), r.seq included.
std::string encodeRecord(const MetaRecord& r);

struct JournalEntry {
  MetaRecord record;
  uint64_t offset = 0;  // of its header in meta.journal
};

struct JournalScan {
  std::vector<JournalEntry> entries;
  uint64_t valid_bytes = 0;  // the prefix holding whole, valid records
  bool torn_tail = false;    // bytes after valid_bytes that are no record: a crash mid-append
};

// Splits meta.journal into records. An invalid record followed only by
// garbage is a torn tail (dropped); one followed by a valid record is
// corruption and an error.
Result<JournalScan> scanJournal(const std::string& bytes);

// free: the free list to record, normally s.free (the live store adds the
// clusters it has reserved but not yet mapped).
std::string encodeCheckpoint(const MetaState& s, const ClusterSet& free);
Result<MetaState> decodeCheckpoint(const std::string& bytes);

// Applies the records after s.last_seq; returns how many were applied.
// Records at or before s.last_seq are already in the checkpoint (a crash
// between the checkpoint's rename and the journal's truncation) and skipped.
Result<uint64_t> replayJournal(MetaState& s, const JournalScan& scan);

}  // namespace offcore
