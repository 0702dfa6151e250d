#include "bench/report.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>

#include "base/files.h"
#include "base/subprocess.h"

namespace offcore {
namespace {

std::string fmt(double v) {
  char buf[64];
  if (v != 0 && (v < 0.01 && v > -0.01))
    std::snprintf(buf, sizeof buf, "%.2e", v);
  else
    std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

std::string machineLine() {
  utsname u{};
  ::uname(&u);
  long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
  char when[32];
  std::time_t t = std::time(nullptr);
  std::strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", std::gmtime(&t));
  return std::string(when) + ", Linux " + u.release + ", " + std::to_string(cpus) + " cpus";
}

}  // namespace

std::optional<double> ratio(const BenchRow& row) {
  if (!row.baseline || *row.baseline == 0) return std::nullopt;
  return row.offcore / *row.baseline;
}

std::string BenchReport::toMarkdown(const std::string& plot_file) const {
  std::string md = "# " + title + "\n\n";
  md += "Suite `" + suite + "`, run with `offcore bench " + suite + "` on " + machineLine() + ".\n\n";
  md += "Baseline: " + baseline_name + ".\n\n";
  if (!method.empty()) md += method + "\n\n";
  md += "| metric | unit | offcore | baseline | ratio (offcore/baseline) | detail |\n";
  md += "|---|---|---:|---:|---:|---|\n";
  for (const auto& r : rows) {
    auto q = ratio(r);
    md += "| " + r.metric + " | " + r.unit + " | " + fmt(r.offcore) + " | " +
          (r.baseline ? fmt(*r.baseline) : std::string("—")) + " | " + (q ? fmt(*q) + "×" : std::string("—")) + " | " +
          r.detail + " |\n";
  }
  md += "\n";
  if (!plot_file.empty()) md += "![" + suite + "](" + plot_file + ")\n\n";
  for (const auto& n : notes) md += "- " + n + "\n";
  return md;
}

Result<std::string> writeReport(const BenchReport& report, const std::string& dir) {
  OC_TRY(makeDirs(dir));
  std::string plot_name;
  if (report.plot) {
    // One bar per metric: offcore/baseline. Metrics have different units,
    // so the ratio is the only scale they share; 1.0 is parity.
    std::string data;
    int i = 0;
    for (const auto& r : report.rows) {
      auto q = ratio(r);
      if (!q) continue;
      data += std::to_string(i++) + " \"" + r.metric + "\" " + std::to_string(*q) + "\n";
    }
    if (!data.empty()) {
      std::string data_file = dir + "/" + report.suite + ".dat";
      OC_TRY(writeFileAtomic(data_file, data));
      std::string png = dir + "/" + report.suite + ".png";
      int width = std::max(700, 60 * i + 200);
      std::string script = "set terminal pngcairo size " + std::to_string(width) +
                           ",560 font ',10'\n"
                           "set output '" +
                           png +
                           "'\n"
                           "set title '" +
                           report.title +
                           ": offcore / baseline (1.0 = parity)' noenhanced\n"
                           "set style fill solid 0.8 border -1\nset boxwidth 0.7\nset bmargin 12\n"
                           "set xtics rotate by -45 noenhanced\nset grid ytics\nset yrange [0:*]\nunset key\n"
                           "set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 2 lc rgb 'red'\n"
                           "plot '" +
                           data_file + "' using 1:3:xtic(2) with boxes lc rgb '#4060c0'\n";
      SpawnOptions opts;
      opts.stdin_data = script;
      auto ran = runCapture({"gnuplot"}, opts);
      if (ran.ok() && ran->exit_code == 0) plot_name = report.suite + ".png";
      std::remove(data_file.c_str());
    }
  }
  std::string path = dir + "/" + report.suite + ".md";
  OC_TRY(writeFileAtomic(path, report.toMarkdown(plot_name), 0644));  // a report is published
  return path;
}

}  // namespace offcore
