#include "bench/suite.h"

namespace offcore {

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
}

}  // namespace offcore
