// Counters and gauges rendered in the Prometheus text exposition format
// (version 0.0.4). A registry belongs to one loop thread, like everything
// else; values read from other threads go through EventLoop::post.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace offcore {

class MetricsRegistry {
 public:
  using Labels = std::vector<std::pair<std::string, std::string>>;

  void describe(const std::string& name, const std::string& type, const std::string& help);
  void set(const std::string& name, const Labels& labels, double value);
  void add(const std::string& name, const Labels& labels, double delta);
  double get(const std::string& name, const Labels& labels) const;
  // The series' value itself (created at 0), for a hot path that bumps the
  // same series on every event: resolve once, then increment the pointer.
  // Valid for the registry's life (series are never removed).
  double* series(const std::string& name, const Labels& labels);

  std::string renderText() const;

 private:
  struct Family {
    std::string type = "gauge";
    std::string help;
    std::map<std::string, double> samples;  // rendered label set -> value
  };
  static std::string renderLabels(const Labels& labels);
  std::map<std::string, Family> families_;
};

}  // namespace offcore
