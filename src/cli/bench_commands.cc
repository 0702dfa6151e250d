// `offcore bench <suite>`: run a suite against its baseline, write the report.
#include <cstdio>

#include "bench/suite.h"
#include "cli/common.h"

namespace offcore {

void registerBenchCommands(CLI::App& app, CliContext& ctx) {
  struct Opts {
    std::string suite;
    BenchOptions options;
    bool list = false;
  };
  auto o = std::make_shared<Opts>();
  auto* bench = app.add_subcommand("bench", "benchmarks: offcore against its baseline, as a Markdown report");
  bench->add_option("suite", o->suite, "suite name (see --list)");
  bench->add_option("--runs", o->options.runs, "repetitions; reports quote medians")->capture_default_str();
  bench->add_option("--out", o->options.out_dir, "report directory")->capture_default_str();
  bench->add_flag("--quick", o->options.quick, "short runs, for smoke tests");
  bench->add_flag("--list", o->list, "list the suites");
  bench->callback([&ctx, o] {
    ctx.action = [&ctx, o] {
      SuiteRegistry registry;
      registerBuiltinSuites(registry, ctx.config);
      if (o->list || o->suite.empty()) {
        for (const auto& [name, s] : registry.all()) std::printf("%-10s %s\n", name.c_str(), s->summary().c_str());
        return o->suite.empty() && !o->list ? 1 : 0;
      }
      BenchSuite* suite = registry.find(o->suite);
      if (!suite) return fail("bench", makeError("no suite '" + o->suite + "' (see `offcore bench --list`)"));
      installBenchSignals();
      auto report = suite->run(o->options);
      if (!report.ok()) return fail("bench " + o->suite, report.error());
      auto path = writeReport(*report, o->options.out_dir);
      if (!path.ok()) return fail("bench " + o->suite, path.error());
      std::printf("%s", report->toMarkdown("").c_str());
      std::printf("\nreport: %s\n", path->c_str());
      return 0;
    };
  });
}

}  // namespace offcore
