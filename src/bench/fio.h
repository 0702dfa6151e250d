// fio's JSON output (--output-format=json), read by the storage benchmark
// and the demo: the first job's read or write side.
#pragma once

#include <string>

#include "base/result.h"

namespace offcore {

struct FioResult {
  double iops = 0, bw_mib = 0, p50_us = 0, p99_us = 0, ios = 0;
  double max_us = 0;  // the worst completion latency
  int error = 0;      // the job's error (errno; 0: none, verify included)
};

// A one-line error when the text holds no job result.
Result<FioResult> parseFioJson(const std::string& text, bool read);

}  // namespace offcore
