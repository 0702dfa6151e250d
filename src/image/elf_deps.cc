#include "image/elf_deps.h"

#include <cstring>

#include "base/strings.h"

namespace offcore {

namespace {

// Caps (far above what real files have) so a hostile file costs little.
constexpr uint32_t kMaxPhdrs = 512;
constexpr uint64_t kMaxDynamicBytes = 1 << 20;
constexpr size_t kMaxString = 4096;
constexpr size_t kMaxNeeded = 1024;

constexpr uint32_t kPtLoad = 1, kPtDynamic = 2, kPtInterp = 3;
constexpr int64_t kDtNull = 0, kDtNeeded = 1, kDtStrtab = 5, kDtStrsz = 10, kDtRpath = 15, kDtRunpath = 29;

class Bytes {
 public:
  Bytes(const std::string& b, bool le) : b_(b), le_(le) {}
  bool has(size_t off, size_t n) const { return off <= b_.size() && n <= b_.size() - off; }
  uint64_t get(size_t off, size_t n) const {  // caller checked has(off, n)
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) {
      auto byte = static_cast<uint8_t>(b_[off + (le_ ? n - 1 - i : i)]);
      v = (v << 8) | byte;
    }
    return v;
  }

 private:
  const std::string& b_;
  bool le_;
};

struct Segment {
  uint32_t type = 0;
  uint64_t offset = 0, vaddr = 0, filesz = 0;
};

}  // namespace

bool looksLikeElf(const std::string& head) {
  return head.size() >= 4 && std::memcmp(head.data(),
                                         "\x7f"
                                         "ELF",
                                         4) == 0;
}

Result<ElfDeps> parseElfDeps(const ElfReadAt& read, uint64_t file_size) {
  OC_ASSIGN_OR_RETURN(std::string eh, read(0, 64));
  if (!looksLikeElf(eh) || eh.size() < 52) return makeError("not an ELF file");
  ElfDeps d;
  const auto cls = static_cast<uint8_t>(eh[4]), data = static_cast<uint8_t>(eh[5]);
  if ((cls != 1 && cls != 2) || (data != 1 && data != 2)) return makeError("ELF header: bad class or byte order");
  d.is64 = cls == 2;
  d.little_endian = data == 1;
  if (d.is64 && eh.size() < 64) return makeError("ELF header: truncated");
  Bytes h(eh, d.little_endian);
  d.type = static_cast<uint16_t>(h.get(16, 2));
  d.machine = static_cast<uint16_t>(h.get(18, 2));
  const uint64_t phoff = d.is64 ? h.get(32, 8) : h.get(28, 4);
  const uint64_t phentsize = d.is64 ? h.get(54, 2) : h.get(42, 2);
  const uint64_t phnum = d.is64 ? h.get(56, 2) : h.get(44, 2);
  if (phnum == 0) return d;
  if (phnum > kMaxPhdrs) return makeError("ELF header: " + std::to_string(phnum) + " program headers");
  if (phentsize < (d.is64 ? 56u : 32u)) return makeError("ELF header: program header entries too small");
  if (phoff > file_size || phentsize * phnum > file_size - phoff) {
    return makeError("ELF program headers lie outside the file");
  }
  OC_ASSIGN_OR_RETURN(std::string ph, read(phoff, static_cast<size_t>(phentsize * phnum)));
  if (ph.size() != phentsize * phnum) return makeError("ELF program headers: short read");
  Bytes p(ph, d.little_endian);
  std::vector<Segment> segs;
  for (uint64_t i = 0; i < phnum; ++i) {
    const size_t o = static_cast<size_t>(i * phentsize);
    Segment s;
    s.type = static_cast<uint32_t>(p.get(o, 4));
    if (d.is64) {
      s.offset = p.get(o + 8, 8);
      s.vaddr = p.get(o + 16, 8);
      s.filesz = p.get(o + 32, 8);
    } else {
      s.offset = p.get(o + 4, 4);
      s.vaddr = p.get(o + 8, 4);
      s.filesz = p.get(o + 16, 4);
    }
    if (s.offset > file_size || s.filesz > file_size - s.offset) {
      if (s.type == kPtInterp || s.type == kPtDynamic) return makeError("ELF segment lies outside the file");
      continue;  // a PT_LOAD's filesz past EOF: not ours to judge, just unusable for mapping
    }
    segs.push_back(s);
  }
  const Segment* dyn = nullptr;
  for (const auto& s : segs) {
    if (s.type == kPtInterp) {
      if (s.filesz == 0 || s.filesz > kMaxString) return makeError("ELF interpreter name has a bad size");
      OC_ASSIGN_OR_RETURN(std::string interp, read(s.offset, static_cast<size_t>(s.filesz)));
      d.interp = interp.substr(0, interp.find('\0'));
    } else if (s.type == kPtDynamic && !dyn) {
      dyn = &s;
    }
  }
  if (!dyn || dyn->filesz == 0) return d;
  if (dyn->filesz > kMaxDynamicBytes) return makeError("ELF dynamic section too large");
  OC_ASSIGN_OR_RETURN(std::string dt, read(dyn->offset, static_cast<size_t>(dyn->filesz)));
  Bytes t(dt, d.little_endian);
  const size_t word = d.is64 ? 8 : 4;
  uint64_t strtab = 0, strsz = 0;
  bool have_strtab = false;
  std::vector<std::pair<int64_t, uint64_t>> wanted;  // (tag, string offset)
  for (size_t o = 0; t.has(o, 2 * word); o += 2 * word) {
    auto tag = static_cast<int64_t>(t.get(o, word));
    uint64_t val = t.get(o + word, word);
    if (tag == kDtNull) break;
    if (tag == kDtStrtab) {
      strtab = val;
      have_strtab = true;
    } else if (tag == kDtStrsz) {
      strsz = val;
    } else if (tag == kDtNeeded || tag == kDtRpath || tag == kDtRunpath) {
      if (wanted.size() >= kMaxNeeded) return makeError("ELF dynamic section names too many libraries");
      wanted.emplace_back(tag, val);
    }
  }
  if (wanted.empty()) return d;
  if (!have_strtab) return makeError("ELF dynamic section has no string table");
  // DT_STRTAB is an address: map it to a file offset through a PT_LOAD.
  uint64_t str_off = 0;
  bool mapped = false;
  for (const auto& s : segs) {
    if (s.type == kPtLoad && strtab >= s.vaddr && strtab - s.vaddr < s.filesz) {
      str_off = s.offset + (strtab - s.vaddr);
      mapped = true;
      break;
    }
  }
  if (!mapped) return makeError("ELF string table is not in any loaded segment");
  if (strsz == 0 || str_off > file_size || strsz > file_size - str_off) {
    return makeError("ELF string table lies outside the file");
  }
  for (const auto& [tag, off] : wanted) {
    if (off >= strsz) return makeError("ELF dynamic entry points past its string table");
    size_t n = static_cast<size_t>(std::min<uint64_t>(kMaxString, strsz - off));
    OC_ASSIGN_OR_RETURN(std::string s, read(str_off + off, n));
    size_t end = s.find('\0');
    if (end == std::string::npos) return makeError("ELF string is not terminated");
    s.resize(end);
    if (tag == kDtNeeded) {
      if (!s.empty()) d.needed.push_back(s);
    } else {
      auto& list = tag == kDtRpath ? d.rpath : d.runpath;
      for (auto& part : splitFields(s, ':')) list.push_back(std::move(part));
    }
  }
  return d;
}

std::vector<std::string> parseShebang(const std::string& head) {
  if (head.size() < 2 || head[0] != '#' || head[1] != '!') return {};
  std::string line = head.substr(2, 253);
  line = line.substr(0, line.find('\n'));
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r'; };
  size_t b = 0;
  while (b < line.size() && space(line[b])) ++b;
  size_t e = b;
  while (e < line.size() && !space(line[e])) ++e;
  if (e == b) return {};
  std::vector<std::string> out{line.substr(b, e - b)};
  size_t a = e;
  while (a < line.size() && space(line[a])) ++a;
  size_t z = line.size();
  while (z > a && space(line[z - 1])) --z;
  if (z > a) out.push_back(line.substr(a, z - a));
  return out;
}

}  // namespace offcore
