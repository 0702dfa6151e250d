// Small string helpers with no home of their own (trim and splitLines live
// in files.h for their file-reading callers).
#pragma once

#include <string>
#include <vector>

namespace offcore {

// The non-empty pieces of s between separators: "a::b:" -> {"a", "b"}.
std::vector<std::string> splitFields(const std::string& s, char sep);

// s with every control character (below 0x20, and 0x7f) replaced by '?':
// a peer's text quoted in a one-line error stays one line.
std::string printableLine(std::string s);

}  // namespace offcore
