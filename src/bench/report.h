// A benchmark report: offcore against a named baseline, side by side, as
// Markdown (bench/results/<suite>.md) with an optional gnuplot bar chart.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "base/result.h"

namespace offcore {

struct BenchRow {
  std::string metric;
  std::string unit;
  double offcore = 0;
  std::optional<double> baseline;  // none where no baseline applies
  bool lower_is_better = true;
  std::string detail;  // e.g. "p90 41 ms, 5 runs"
};

struct BenchReport {
  std::string suite;
  std::string title;
  std::string baseline_name;  // what "baseline" means in this suite
  std::string method;         // how it was measured, for the reader
  std::vector<BenchRow> rows;
  std::vector<std::string> notes;
  bool plot = true;  // bar chart of rows that have a baseline

  std::string toMarkdown(const std::string& plot_file) const;
};

// offcore/baseline, or nullopt when there is no baseline or it is zero.
std::optional<double> ratio(const BenchRow& row);

// Writes <dir>/<suite>.md and, when gnuplot is present, <dir>/<suite>.png.
// Returns the Markdown path.
Result<std::string> writeReport(const BenchReport& report, const std::string& dir);

}  // namespace offcore
