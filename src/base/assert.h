// OC_ASSERT is for invariants of our own code only: a failure means a bug in
// offcore, never bad input. It stays on in release builds, because a DPU
// service that continues past a broken invariant corrupts tenant data.
#pragma once

namespace offcore::detail {
[[noreturn]] void assertFailed(const char* expr, const char* file, int line, const char* msg);
}

#define OC_ASSERT(cond, msg)                                                      \
  do {                                                                            \
    if (!(cond)) ::offcore::detail::assertFailed(#cond, __FILE__, __LINE__, msg); \
  } while (0)
