#include "bench/suite.h"

#include <signal.h>

#include <atomic>

namespace offcore {

namespace {

std::atomic<int> g_signal{0};

void onSignal(int sig) { g_signal.store(sig); }

}  // namespace

void installBenchSignals() {
  struct sigaction sa {};
  sa.sa_handler = onSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
}

bool benchInterrupted() { return g_signal.load() != 0; }

void SuiteRegistry::add(std::unique_ptr<BenchSuite> suite) {
  std::string n = suite->name();
  suites_[n] = std::move(suite);
}

BenchSuite* SuiteRegistry::find(const std::string& name) const {
  auto it = suites_.find(name);
  return it == suites_.end() ? nullptr : it->second.get();
}

void registerBuiltinSuites(SuiteRegistry& registry, const Config& config) {
  registry.add(makeDpuSuite(config));
  registry.add(makeStorageSuite(config));
  registry.add(makeColdstartSuite(config));
  registry.add(makeSvcSuite(config));
  registry.add(makeMeshSuite(config));
  registry.add(makeVmSuite(config));
  registry.add(makeControlPlaneSuite(config));
}

}  // namespace offcore
