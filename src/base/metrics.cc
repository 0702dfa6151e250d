#include "base/metrics.h"

#include <cmath>
#include <cstdio>

namespace offcore {
namespace {

// Label values escape backslash, double quote and newline (exposition format).
std::string escapeLabel(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string formatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

}  // namespace

std::string MetricsRegistry::renderLabels(const Labels& labels) {
  if (labels.empty()) return "";
  std::string s = "{";
  for (size_t i = 0; i < labels.size(); ++i) {
    if (i) s += ',';
    s += labels[i].first + "=\"" + escapeLabel(labels[i].second) + "\"";
  }
  return s + "}";
}

void MetricsRegistry::describe(const std::string& name, const std::string& type, const std::string& help) {
  auto& f = families_[name];
  f.type = type;
  f.help = help;
}

void MetricsRegistry::set(const std::string& name, const Labels& labels, double value) {
  families_[name].samples[renderLabels(labels)] = value;
}

void MetricsRegistry::add(const std::string& name, const Labels& labels, double delta) {
  families_[name].samples[renderLabels(labels)] += delta;
}

double* MetricsRegistry::series(const std::string& name, const Labels& labels) {
  return &families_[name].samples[renderLabels(labels)];  // std::map: nodes never move
}

double MetricsRegistry::get(const std::string& name, const Labels& labels) const {
  auto f = families_.find(name);
  if (f == families_.end()) return 0;
  auto s = f->second.samples.find(renderLabels(labels));
  return s == f->second.samples.end() ? 0 : s->second;
}

std::string MetricsRegistry::renderText() const {
  std::string out;
  for (const auto& [name, family] : families_) {
    if (!family.help.empty()) out += "# HELP " + name + " " + family.help + "\n";
    out += "# TYPE " + name + " " + family.type + "\n";
    for (const auto& [labels, value] : family.samples) {
      out += name + labels + " " + formatValue(value) + "\n";
    }
  }
  return out;
}

}  // namespace offcore
