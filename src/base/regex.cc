#include "base/regex.h"

#include <re2/re2.h>

namespace offcore {

Result<Regex> Regex::compile(std::string_view pattern) {
  RE2::Options opts;
  opts.set_log_errors(false);
  opts.set_max_mem(kMaxProgramBytes);
  auto re = std::make_unique<RE2>(re2::StringPiece(pattern.data(), pattern.size()), opts);
  if (!re->ok()) {
    return makeError("regular expression \"" + std::string(pattern) + "\": " + re->error() +
                     " (RE2 syntax, as Go and Envoy use)");
  }
  return Regex(std::move(re));
}

Regex::Regex(std::unique_ptr<re2::RE2> re) : re_(std::move(re)) {}
Regex::Regex(Regex&&) noexcept = default;
Regex& Regex::operator=(Regex&&) noexcept = default;
Regex::~Regex() = default;

bool Regex::fullMatch(std::string_view subject) const {
  return RE2::FullMatch(re2::StringPiece(subject.data(), subject.size()), *re_);
}

bool Regex::partialMatch(std::string_view subject) const {
  return RE2::PartialMatch(re2::StringPiece(subject.data(), subject.size()), *re_);
}

const std::string& Regex::pattern() const { return re_->pattern(); }

}  // namespace offcore
