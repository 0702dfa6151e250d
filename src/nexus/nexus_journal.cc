#include "nexus/nexus_journal.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <nlohmann/json.hpp>

#include "base/files.h"
#include "base/json.h"

namespace offcore::nexus {

using nlohmann::json;

namespace {

constexpr uint64_t kMaxRegions = uint64_t{1} << 26;
constexpr size_t kMaxReplicasInRecord = 8;

// Runs [first, count] of set bits.
json bitmapRuns(const std::vector<uint64_t>& words) {
  json runs = json::array();
  uint64_t n = words.size() * 64, r = 0;
  while (r < n) {
    if (!(words[r / 64] >> (r % 64) & 1)) {
      ++r;
      continue;
    }
    uint64_t start = r;
    while (r < n && (words[r / 64] >> (r % 64) & 1)) ++r;
    runs.push_back(json::array({start, r - start}));
  }
  return runs;
}

bool isU64(const json& j) { return j.is_number_unsigned(); }

// Sets bits [from, to) word by word.
void setBits(std::vector<uint64_t>& words, uint64_t from, uint64_t to) {
  while (from < to) {
    uint64_t w = from / 64, lo = from % 64;
    uint64_t hi = std::min<uint64_t>(64, lo + (to - from));
    uint64_t mask = (hi == 64 ? ~uint64_t{0} : (uint64_t{1} << hi) - 1) & ~((uint64_t{1} << lo) - 1);
    words[w] |= mask;
    from += hi - lo;
  }
}

}  // namespace

const char* replicaStateName(ReplicaState s) {
  switch (s) {
    case ReplicaState::kOnline: return "online";
    case ReplicaState::kFaulted: return "faulted";
    case ReplicaState::kRebuilding: return "rebuilding";
  }
  return "unknown";
}

Result<ReplicaState> parseReplicaState(std::string_view s) {
  if (s == "online") return ReplicaState::kOnline;
  if (s == "faulted") return ReplicaState::kFaulted;
  if (s == "rebuilding") return ReplicaState::kRebuilding;
  return makeError("unknown replica state '" + std::string(s) + "' (online, faulted or rebuilding)");
}

uint64_t missedRegions(const ReplicaRecord& r) {
  uint64_t n = 0;
  for (uint64_t w : r.missed) n += static_cast<uint64_t>(std::popcount(w));
  return n;
}

std::string encodeRecord(const NexusRecord& record) {
  json j{{"version", 1},
         {"generation", record.generation},
         {"region_bytes", record.region_bytes},
         {"size_bytes", record.size_bytes},
         {"replicas", json::array()}};
  for (const auto& r : record.replicas) {
    j["replicas"].push_back({{"name", r.name}, {"state", replicaStateName(r.state)}, {"missed", bitmapRuns(r.missed)}});
  }
  return dumpJson(j, 1) + "\n";
}

Result<NexusRecord> decodeRecord(std::string_view text) {
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return makeError("nexus record: not a JSON object");
  if (!j.contains("version") || j["version"] != 1) return makeError("nexus record: unknown version (want 1)");
  NexusRecord rec;
  for (const char* k : {"generation", "region_bytes", "size_bytes"}) {
    if (!j.contains(k) || !isU64(j[k])) return makeError(std::string("nexus record: ") + k + " is not a number");
  }
  rec.generation = j["generation"].get<uint64_t>();
  rec.region_bytes = j["region_bytes"].get<uint64_t>();
  rec.size_bytes = j["size_bytes"].get<uint64_t>();
  if (rec.region_bytes < 512 || (rec.region_bytes & (rec.region_bytes - 1)) != 0) {
    return makeError("nexus record: region_bytes " + std::to_string(rec.region_bytes) +
                     " is not a power of two >= 512");
  }
  uint64_t regions = rec.size_bytes / rec.region_bytes + (rec.size_bytes % rec.region_bytes != 0);
  if (regions > kMaxRegions) return makeError("nexus record: " + std::to_string(regions) + " regions is too many");
  if (!j.contains("replicas") || !j["replicas"].is_array() || j["replicas"].size() > kMaxReplicasInRecord) {
    return makeError("nexus record: replicas is not an array of at most 8");
  }
  for (const json& r : j["replicas"]) {
    if (!r.is_object() || !r.contains("name") || !r["name"].is_string() || !r.contains("state") ||
        !r["state"].is_string() || !r.contains("missed") || !r["missed"].is_array()) {
      return makeError("nexus record: a replica lacks name, state or missed");
    }
    ReplicaRecord rr;
    rr.name = r["name"].get<std::string>();
    if (rr.name.empty() || rr.name.size() > 256) return makeError("nexus record: bad replica name");
    OC_ASSIGN_OR_RETURN(rr.state, parseReplicaState(r["state"].get<std::string>()));
    rr.missed.assign((regions + 63) / 64, 0);
    // Runs ascend and do not overlap (as encodeRecord writes them), so
    // filling them costs at most one pass over the bitmap.
    uint64_t next = 0;
    for (const json& run : r["missed"]) {
      if (!run.is_array() || run.size() != 2 || !isU64(run[0]) || !isU64(run[1])) {
        return makeError("nexus record: replica " + rr.name + ": a missed run is not [first, count]");
      }
      uint64_t first = run[0].get<uint64_t>(), count = run[1].get<uint64_t>();
      if (first > regions || count > regions - first) {
        return makeError("nexus record: replica " + rr.name + ": missed run beyond the volume's regions");
      }
      if (first < next || count == 0) {
        return makeError("nexus record: replica " + rr.name + ": missed runs overlap, are out of order or empty");
      }
      next = first + count;
      setBits(rr.missed, first, next);
    }
    rec.replicas.push_back(std::move(rr));
  }
  return rec;
}

namespace {

class FileJournal final : public NexusJournal {
 public:
  explicit FileJournal(std::string path) : path_(std::move(path)) {}

  Result<std::optional<NexusRecord>> load() override {
    if (::access(path_.c_str(), F_OK) != 0) {
      if (errno == ENOENT) return std::optional<NexusRecord>{};
      return errnoError("nexus journal " + path_);
    }
    OC_ASSIGN_OR_RETURN(auto text, readFile(path_));
    auto rec = decodeRecord(text);
    if (!rec.ok()) return rec.error().wrap("nexus journal " + path_);
    return std::optional<NexusRecord>(std::move(*rec));
  }

  Status save(const NexusRecord& record) override {
    OC_TRY(writeFileAtomic(path_, encodeRecord(record), 0600));
    // The rename is durable only once the directory is.
    std::string dir = path_.substr(0, path_.find_last_of('/') + 1);
    int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return errnoError("open " + dir);
    int rc = ::fsync(fd);
    int err = errno;
    ::close(fd);
    if (rc != 0) return errnoError("fsync " + dir, err);
    return okStatus();
  }

 private:
  std::string path_;
};

}  // namespace

std::shared_ptr<NexusJournal> makeFileJournal(std::string path) {
  return std::make_shared<FileJournal>(std::move(path));
}

}  // namespace offcore::nexus
