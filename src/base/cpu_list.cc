#include "base/cpu_list.h"

#include <charconv>

#include "base/files.h"

namespace offcore {
namespace {

Result<int> parseCpu(std::string_view s, const std::string& whole) {
  int v = -1;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size() || v < 0 || v > 4095) {
    return makeError("bad cpu list '" + whole + "': '" + std::string(s) +
                     "' is not a cpu number (write it like 0-2,4)");
  }
  return v;
}

}  // namespace

Result<CpuSet> parseCpuList(const std::string& input) {
  std::string text = trim(input);
  if (text.empty()) return makeError("empty cpu list (write it like 0-2,4)");
  CpuSet cpus;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string_view item(text.data() + start, (comma == std::string::npos ? text.size() : comma) - start);
    size_t dash = item.find('-');
    if (dash == std::string_view::npos) {
      OC_ASSIGN_OR_RETURN(int cpu, parseCpu(item, text));
      cpus.insert(cpu);
    } else {
      OC_ASSIGN_OR_RETURN(int lo, parseCpu(item.substr(0, dash), text));
      OC_ASSIGN_OR_RETURN(int hi, parseCpu(item.substr(dash + 1), text));
      if (hi < lo) return makeError("bad cpu list '" + text + "': range " + std::string(item) + " runs backwards");
      for (int c = lo; c <= hi; ++c) cpus.insert(c);
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return cpus;
}

std::string formatCpuList(const CpuSet& cpus) {
  std::string out;
  auto it = cpus.begin();
  while (it != cpus.end()) {
    int lo = *it, hi = *it;
    ++it;
    while (it != cpus.end() && *it == hi + 1) hi = *it++;
    if (!out.empty()) out += ',';
    out += std::to_string(lo);
    if (hi != lo) out += "-" + std::to_string(hi);
  }
  return out;
}

Result<CpuSet> onlineCpus() {
  OC_ASSIGN_OR_RETURN(std::string text, readFile("/sys/devices/system/cpu/online"));
  return parseCpuList(text);
}

}  // namespace offcore
