// Benchmark suites: one per subsystem, each comparing offcore with the
// baseline a user would otherwise run. Suites register explicitly in
// registerBuiltinSuites(); there is no static self-registration.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "base/config.h"
#include "base/result.h"
#include "bench/report.h"

namespace offcore {

struct BenchOptions {
  int runs = 5;  // repetitions; reports quote medians
  std::string out_dir = "bench/results";
  bool quick = false;  // fewer/shorter runs, for smoke tests
};

class BenchSuite {
 public:
  virtual ~BenchSuite() = default;
  virtual std::string name() const = 0;
  virtual std::string summary() const = 0;
  virtual Result<BenchReport> run(const BenchOptions& options) = 0;
};

class SuiteRegistry {
 public:
  void add(std::unique_ptr<BenchSuite> suite);
  BenchSuite* find(const std::string& name) const;
  const std::map<std::string, std::unique_ptr<BenchSuite>>& all() const { return suites_; }

 private:
  std::map<std::string, std::unique_ptr<BenchSuite>> suites_;
};

std::unique_ptr<BenchSuite> makeDpuSuite(const Config& config);
std::unique_ptr<BenchSuite> makeStorageSuite(const Config& config);
std::unique_ptr<BenchSuite> makeColdstartSuite(const Config& config);
std::unique_ptr<BenchSuite> makeSvcSuite(const Config& config);
std::unique_ptr<BenchSuite> makeMeshSuite(const Config& config);
std::unique_ptr<BenchSuite> makeVmSuite(const Config& config);
std::unique_ptr<BenchSuite> makeControlPlaneSuite(const Config& config);

void registerBuiltinSuites(SuiteRegistry& registry, const Config& config);

// SIGINT/SIGTERM while a suite runs set a flag instead of killing the
// process: suites check it between steps, stop, and tear down what they
// made (nodes, gateways, fabric hosts). Installed by `offcore bench`.
void installBenchSignals();
bool benchInterrupted();
inline Status interruptedError() { return makeError("interrupted; what the benchmark made is being removed"); }

}  // namespace offcore
