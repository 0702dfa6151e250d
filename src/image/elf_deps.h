// ElfDeps: what the dynamic loader needs to start an ELF file, read from the
// file alone (no loader run): its interpreter (PT_INTERP), the libraries it
// names (DT_NEEDED, in order) and its search paths (DT_RPATH, DT_RUNPATH).
// The default prefetch list of an image is built from these (prefetch_plan.h).
//
// The bytes come from an image, so they are untrusted: every offset and size
// is checked against the file and held to small caps (program headers,
// dynamic entries, string lengths); anything out of bounds is an error, never
// a read past the input. Fuzzed (fuzz/elf_deps_fuzz.cc).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/result.h"

namespace offcore {

struct ElfDeps {
  bool is64 = false;
  bool little_endian = true;
  uint16_t machine = 0;  // e_machine: a library of another machine is skipped, like ld.so does
  uint16_t type = 0;     // e_type: ET_EXEC 2, ET_DYN 3
  std::string interp;    // "" for a static binary or a library
  std::vector<std::string> needed;
  std::vector<std::string> rpath, runpath;  // split at ':'
};

// Reads up to len bytes at offset (fewer at the end of the file).
using ElfReadAt = std::function<Result<std::string>(uint64_t offset, size_t len)>;

// True when the first bytes are an ELF header's magic.
bool looksLikeElf(const std::string& head);

// Errors: not ELF, a truncated or inconsistent header, a table out of the
// file. A file with no dynamic section is fine (empty needed).
Result<ElfDeps> parseElfDeps(const ElfReadAt& read, uint64_t file_size);

// The interpreter line of a script ("#!/bin/sh -e" -> {"/bin/sh", "-e"}),
// empty when head does not start with "#!". Like the kernel: one optional
// argument, the rest of the line, trimmed; at most the first 255 bytes.
std::vector<std::string> parseShebang(const std::string& head);

}  // namespace offcore
