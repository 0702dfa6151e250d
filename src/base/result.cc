#include "base/result.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "base/assert.h"

namespace offcore {

Error errnoError(const std::string& what, int err) { return Error{err, what + ": " + std::strerror(err)}; }

namespace detail {
void assertFailed(const char* expr, const char* file, int line, const char* msg) {
  std::fprintf(stderr, "offcore: internal error: %s (%s) at %s:%d\n", msg, expr, file, line);
  std::abort();
}
}  // namespace detail

}  // namespace offcore
