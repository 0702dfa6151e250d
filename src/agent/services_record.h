// The supervisor's record of its services, <run_dir>/services.json: what a
// restarted agent needs to adopt the processes its predecessor left running.
// Read back at start-up, so a damaged file must give an error or skip the
// bad entry, never crash (fuzzed in fuzz/api_request_fuzz.cc).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "agent/supervisor.h"
#include "base/result.h"

namespace offcore {

struct RecordedService {
  ServiceSpec spec;
  int restarts = 0;
  std::string state;         // toString(ServiceState) when recorded
  pid_t pid = 0;             // 0: not running when recorded
  uint64_t start_ticks = 0;  // /proc/PID/stat starttime: tells the process from a reused pid
};

std::string renderServicesRecord(const std::vector<RecordedService>& services);

// Entries that are not well-formed are left out and described in `skipped`;
// a document that is not a record at all is an error.
Result<std::vector<RecordedService>> parseServicesRecord(const std::string& text, std::vector<std::string>* skipped);

}  // namespace offcore
