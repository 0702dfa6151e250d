// Regex: a compiled RE2 pattern. RE2 is the syntax the peers that send us
// patterns speak (containerd's Go regexp filters, Istio and Envoy's
// safe_regex), and it matches in time linear in the input, so a hostile
// pattern or subject cannot stall a thread or overflow its stack the way
// a backtracking engine (std::regex) can.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "base/result.h"

namespace re2 {
class RE2;
}

namespace offcore {

class Regex {
 public:
  // The compiled program may use at most this much memory; a pattern whose
  // automaton needs more (e.g. nested counted repetitions) is refused.
  static constexpr int64_t kMaxProgramBytes = 1 << 20;

  // A one-line error naming the pattern and RE2's reason when it does not
  // compile.
  static Result<Regex> compile(std::string_view pattern);

  Regex(Regex&&) noexcept;
  Regex& operator=(Regex&&) noexcept;
  ~Regex();

  bool fullMatch(std::string_view subject) const;     // the whole subject
  bool partialMatch(std::string_view subject) const;  // anywhere in it
  const std::string& pattern() const;

 private:
  explicit Regex(std::unique_ptr<re2::RE2> re);
  std::unique_ptr<re2::RE2> re_;
};

}  // namespace offcore
