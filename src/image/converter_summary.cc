#include <cstdio>

#include <nlohmann/json.hpp>

#include "base/json.h"
#include "image/converter.h"

namespace offcore {

using nlohmann::json;

namespace {
std::string formatBytes(uint64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.1f %s" : "%.0f %s", v, units[u]);
  return buf;
}
}  // namespace

std::string ConvertSummary::toJson() const {
  json layers_j = json::array();
  for (const auto& l : layers) {
    layers_j.push_back({{"diff_id", l.diff_id},
                        {"chain_id", l.chain_id},
                        {"compressed_bytes", l.compressed_bytes},
                        {"tar_bytes", l.tar_bytes},
                        {"fs_bytes", l.fs_bytes},
                        {"stored_bytes", l.stored_bytes},
                        {"chunks", l.chunks},
                        {"reused", l.reused},
                        {"created", l.created}});
  }
  return dumpJson(json{{"source", source},
                       {"manifest_digest", manifest_digest},
                       {"mode", mode},
                       {"lazy_ref", lazy_ref},
                       {"seconds", seconds},
                       {"start_files", start_files},
                       {"start_note", start_note},
                       {"layers", layers_j}},
                  2);
}

std::string ConvertSummary::toText() const {
  uint64_t compressed = 0, tar = 0, fs = 0, stored = 0, chunks = 0;
  int reused = 0;
  std::string created;
  for (const auto& l : layers) {
    compressed += l.compressed_bytes;
    tar += l.tar_bytes;
    fs += l.fs_bytes;
    stored += l.stored_bytes;
    chunks += l.chunks;
    reused += l.reused ? 1 : 0;
    for (const auto& c : l.created) created += "  " + c + "\n";
  }
  char line[512];
  std::string out = "converted " + source + " (" + mode + ", " + std::to_string(layers.size()) + " layers, " +
                    std::to_string(reused) + " already converted)\n";
  if (mode == "flat") {
    std::snprintf(line, sizeof line, "  source %s compressed, %s of tar applied; %.1f s\n",
                  formatBytes(compressed).c_str(), formatBytes(tar).c_str(), seconds);
  } else {
    std::snprintf(line, sizeof line,
                  "  source %s compressed, %s of tar; filesystems %s; stored %s in %llu chunks; %.1f s\n",
                  formatBytes(compressed).c_str(), formatBytes(tar).c_str(), formatBytes(fs).c_str(),
                  formatBytes(stored).c_str(), static_cast<unsigned long long>(chunks), seconds);
  }
  out += line;
  if (!lazy_ref.empty())
    out += "  lazy image: " + lazy_ref + "  (ctr image pull --snapshotter offcore " + lazy_ref + ")\n";
  if (!created.empty()) out += "created:\n" + created;
  if (mode == "layered" && (!start_files.empty() || !start_note.empty())) {
    out += "default prefetch list (from the image config, no trace run): " + std::to_string(start_files.size()) +
           " files\n";
    for (const auto& f : start_files) out += "  " + f + "\n";
    if (!start_note.empty()) out += "  note: " + start_note + "\n";
  }
  return out;
}

}  // namespace offcore
