// Small string helpers with no home of their own (trim and splitLines live
// in files.h for their file-reading callers).
#pragma once

#include <string>
#include <vector>

namespace offcore {

// The non-empty pieces of s between separators: "a::b:" -> {"a", "b"}.
std::vector<std::string> splitFields(const std::string& s, char sep);

}  // namespace offcore
