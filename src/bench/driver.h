// The shell drivers under scripts/bench/: a suite whose orchestration is a
// script (nodes, namespaces, real clients) runs it here and reads back the
// JSON lines it wrote, one measurement each.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/result.h"
#include "bench/report.h"

namespace offcore {

// Runs `bash <source>/scripts/<script> <args> --out FILE` (or FILE as the
// first argument when `out_flag` is false) with OFFCORE set to this binary;
// its progress goes to our stderr. Returns the JSON objects of FILE, which
// lives under /var/tmp with `prefix` in its name and is removed afterwards.
// A non-zero exit is an error naming `what`.
struct DriverRun {
  std::string script;  // relative to the source tree, e.g. "scripts/bench/svc.sh"
  std::string what;    // "svc driver"
  std::string prefix;  // the bench's name prefix, e.g. "ocbs-svc"
  std::vector<std::string> args;
  bool out_flag = true;
};
Result<std::vector<nlohmann::json>> runBenchDriver(const DriverRun& run);

// A suite's own chart: runs the gnuplot `script` (which reads `data_file`,
// removed afterwards) and puts "Chart: ![caption](png)" first in the
// report's notes, or says that gnuplot failed.
void plotChart(const std::string& script, const std::string& data_file, const std::string& caption,
               const std::string& png, BenchReport& report);

}  // namespace offcore
