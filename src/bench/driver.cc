#include "bench/driver.h"

#include <unistd.h>

#include <cstdio>

#include "base/files.h"
#include "base/subprocess.h"

#ifndef OFFCORE_SOURCE_DIR
#define OFFCORE_SOURCE_DIR "."
#endif

namespace offcore {

Result<std::vector<nlohmann::json>> runBenchDriver(const DriverRun& run) {
  std::string driver = std::string(OFFCORE_SOURCE_DIR) + "/" + run.script;
  if (!pathExists(driver)) return makeError("the driver " + driver + " is missing (run from a source checkout)");
  std::string results = "/var/tmp/" + run.prefix + "-results-" + std::to_string(::getpid()) + ".jsonl";
  std::vector<std::string> argv{"env", "OFFCORE=" + selfExe(), "bash", driver};
  if (!run.out_flag) argv.push_back(results);
  argv.insert(argv.end(), run.args.begin(), run.args.end());
  if (run.out_flag) argv.insert(argv.end(), {"--out", results});
  OC_ASSIGN_OR_RETURN(pid_t pid, spawn(argv));
  OC_ASSIGN_OR_RETURN(int rc, waitExit(pid));
  auto text = readFile(results);
  std::remove(results.c_str());
  if (rc != 0) return makeError("the " + run.what + " failed (exit " + std::to_string(rc) + "); see its output above");
  if (!text.ok()) return text.error();
  std::vector<nlohmann::json> out;
  for (const auto& line : splitLines(*text)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.is_object()) out.push_back(std::move(j));
  }
  return out;
}

void plotChart(const std::string& script, const std::string& data_file, const std::string& caption,
               const std::string& png, BenchReport& report) {
  SpawnOptions opts;
  opts.stdin_data = script;
  auto ran = runCapture({"gnuplot"}, opts);
  std::remove(data_file.c_str());
  bool ok = ran.ok() && ran->exit_code == 0;
  report.notes.insert(report.notes.begin(), ok ? "Chart: ![" + caption + "](" + png + ")"
                                               : std::string("gnuplot failed; no chart this run."));
}

}  // namespace offcore
