// meta.journal and meta.ckpt are read back after crashes, disk errors and
// whatever else happened to the files: recovery must turn any bytes into a
// state or an error, never a crash or an unbounded allocation.
//
// Input: one mode byte, then the file(s). Mode 0: all of it is meta.journal;
// 1: all of it is meta.ckpt; 2: two length bytes, then meta.ckpt of that
// length (clamped) followed by meta.journal.
#include <cstddef>
#include <cstdint>
#include <string>

#include "storage/journal.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace offcore;
  if (size < 1) return 0;
  const char* p = reinterpret_cast<const char*>(data) + 1;
  size_t n = size - 1;
  std::string ckpt, journal;
  bool has_ckpt = false;
  switch (data[0] % 3) {
    case 0: journal.assign(p, n); break;
    case 1:
      ckpt.assign(p, n);
      has_ckpt = true;
      break;
    default: {
      if (n < 2) return 0;
      size_t len = static_cast<size_t>(data[1]) | static_cast<size_t>(data[2]) << 8;
      p += 2;
      n -= 2;
      if (len > n) len = n;
      ckpt.assign(p, len);
      journal.assign(p + len, n - len);
      has_ckpt = true;
    }
  }

  MetaState state;
  if (has_ckpt) {
    auto decoded = decodeCheckpoint(ckpt);
    if (!decoded.ok()) return 0;
    state = std::move(*decoded);
  }
  auto scan = scanJournal(journal);
  if (!scan.ok()) return 0;
  if (scan->valid_bytes > journal.size()) __builtin_trap();
  auto applied = replayJournal(state, *scan);
  auto problems = checkInvariants(state, std::nullopt);
  // Whatever recovery accepted must survive a checkpoint round trip.
  auto again = decodeCheckpoint(encodeCheckpoint(state, state.free));
  if (!again.ok() || again->volumes.size() != state.volumes.size() || !(again->free == state.free)) __builtin_trap();
  if (problems.empty() && !checkInvariants(*again, std::nullopt).empty()) __builtin_trap();
  (void)applied;
  return 0;
}
