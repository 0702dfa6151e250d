#include "bench/fio.h"

#include <nlohmann/json.hpp>

namespace offcore {

using nlohmann::json;

Result<FioResult> parseFioJson(const std::string& text, bool read) {
  const auto j = json::parse(text, nullptr, false);
  auto jobs = j.is_object() ? j.find("jobs") : j.end();
  if (jobs == j.end() || !jobs->is_array() || jobs->empty() || !(*jobs)[0].is_object()) {
    return makeError("fio gave no JSON result");
  }
  auto side = (*jobs)[0].find(read ? "read" : "write");
  if (side == (*jobs)[0].end() || !side->is_object()) {
    return makeError(std::string("fio's result has no ") + (read ? "read" : "write") + " side");
  }
  FioResult r;
  r.iops = side->value("iops", 0.0);
  r.bw_mib = side->value("bw", 0.0) / 1024.0;
  r.ios = side->value("total_ios", 0.0);
  r.error = (*jobs)[0].value("error", 0);
  auto clat = side->find("clat_ns");
  if (clat != side->end() && clat->is_object()) {
    r.max_us = clat->value("max", 0.0) / 1000.0;
    auto pct = clat->find("percentile");
    if (pct != clat->end() && pct->is_object()) {
      r.p50_us = pct->value("50.000000", 0.0) / 1000.0;
      r.p99_us = pct->value("99.000000", 0.0) / 1000.0;
    }
  }
  return r;
}

}  // namespace offcore
