// Result<T>: the one way fallible code in offcore reports failure.
//
// Rule (see docs/STYLE.md): anything that can fail because of the outside
// world (a syscall, a peer, user input, a missing file) returns a Result.
// Assertions (OC_ASSERT) are only for broken invariants inside our own code.
// Exceptions never cross a data path; third-party libraries that throw are
// wrapped at the call site.
#pragma once

#include <cerrno>
#include <string>
#include <utility>
#include <variant>

namespace offcore {

struct Error {
  int code = 0;         // an errno value when one applies, else 0
  std::string message;  // one line: what failed, and what to do about it

  // Prefixes context, so errors read outermost-first: "dpu up: cgroup: EACCES".
  Error wrap(const std::string& context) const { return Error{code, context + ": " + message}; }
};

inline Error makeError(std::string message, int code = 0) { return Error{code, std::move(message)}; }

// An error that carries errno and its text.
Error errnoError(const std::string& what, int err = errno);

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}  // NOLINT: implicit by design

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &std::get<0>(v_); }
  const T* operator->() const { return &std::get<0>(v_); }
  T& operator*() & { return std::get<0>(v_); }
  const T& operator*() const& { return std::get<0>(v_); }
  T&& operator*() && { return std::get<0>(std::move(v_)); }

  const Error& error() const { return std::get<1>(v_); }

  T valueOr(T fallback) const& { return ok() ? value() : std::move(fallback); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return error_; }

 private:
  Error error_;
  bool ok_ = true;
};

using Status = Result<void>;

inline Status okStatus() { return Status(); }

}  // namespace offcore

#define OC_CONCAT_INNER(a, b) a##b
#define OC_CONCAT(a, b) OC_CONCAT_INNER(a, b)

// Returns the error of a failed Result/Status from the enclosing function.
#define OC_TRY(expr)                                         \
  do {                                                       \
    auto&& oc_try_result_ = (expr);                          \
    if (!oc_try_result_.ok()) return oc_try_result_.error(); \
  } while (0)

// Declares `lhs` from a successful Result, or returns its error.
#define OC_ASSIGN_OR_RETURN(lhs, expr)                                                       \
  auto OC_CONCAT(oc_result_, __LINE__) = (expr);                                             \
  if (!OC_CONCAT(oc_result_, __LINE__).ok()) return OC_CONCAT(oc_result_, __LINE__).error(); \
  lhs = std::move(OC_CONCAT(oc_result_, __LINE__)).value()
