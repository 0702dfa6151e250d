// Image files are untrusted: the prefetch planner reads the ELF headers,
// program headers, dynamic section and strings of every program and library
// an image's entrypoint names, and the #! line of scripts. Any bytes must
// give dependencies or an error, never a read outside the input or a hang.
#include <cstddef>
#include <cstdint>
#include <string>

#include "image/elf_deps.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  auto read = [&bytes](uint64_t off, size_t len) -> offcore::Result<std::string> {
    if (off >= bytes.size()) return std::string();
    return bytes.substr(static_cast<size_t>(off), len);
  };
  auto deps = offcore::parseElfDeps(read, bytes.size());
  if (deps.ok()) {
    for (const auto& n : deps->needed) {
      if (n.empty() || n.size() > 4096) __builtin_trap();
    }
  }
  (void)offcore::parseShebang(bytes);
  return 0;
}
