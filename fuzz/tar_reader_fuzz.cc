// Layer blobs come from registries: reading and unpacking one must turn any
// bytes into a layer or an error, never a crash, a hang, or a write outside
// the destination.
//
// Input: one mode byte (bit 0: kOverlayForm or kApplyInPlace), then the blob
// (tar, tar+gzip or tar+zstd). Each run unpacks into a fresh directory under
// /dev/shm that is removed afterwards.
#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "base/files.h"
#include "image/layer_apply.h"
#include "image/tar_reader.h"

namespace {

// Small inputs keep runs fast; the declared sizes are capped too, because a
// few compressed bytes can declare (and inflate to) gigabytes. The layer
// bounds cap both what is declared and what is decompressed.
constexpr size_t kMaxInput = 64 * 1024;
constexpr uint64_t kMaxDeclared = 8 << 20;
constexpr int kMaxEntries = 512;
const offcore::LayerBounds kBounds{.max_bytes = kMaxDeclared, .max_ratio = 0, .ratio_floor = 0};

bool smallEnough(const uint8_t* data, size_t size) {
  auto r = offcore::TarReader::openMemory(data, size, kBounds);
  if (!r.ok()) return true;  // the applier must reject it the same way
  offcore::TarEntry e;
  uint64_t total = 0;
  for (int n = 0; n < kMaxEntries; n++) {
    auto more = (*r)->next(e);
    if (!more.ok() || !*more) return true;
    if (e.size > kMaxDeclared - total) return false;
    total += e.size;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace offcore;
  if (size < 1 || size > kMaxInput) return 0;
  WhiteoutMode mode = (data[0] & 1) != 0 ? WhiteoutMode::kApplyInPlace : WhiteoutMode::kOverlayForm;
  data++, size--;
  if (!smallEnough(data, size)) return 0;

  char root_tmpl[] = "/dev/shm/oc_tar_fuzz.XXXXXX";
  if (::mkdtemp(root_tmpl) == nullptr) __builtin_trap();
  std::string root = root_tmpl;
  // dest sits next to a canary: anything the layer does outside dest shows up.
  std::string dest = root + "/dest", canary = root + "/canary";
  if (::mkdir(dest.c_str(), 0755) != 0 || !writeFileAtomic(canary, "c").ok()) __builtin_trap();
  auto stats = applyLayerMemory(data, size, dest, mode, kBounds);
  (void)stats;
  // Only dest and the untouched canary may exist next to dest.
  auto canary_data = readFile(canary);
  if (!canary_data.ok() || *canary_data != "c") __builtin_trap();
  DIR* dir = ::opendir(root.c_str());
  if (dir == nullptr) __builtin_trap();
  while (struct dirent* d = ::readdir(dir)) {
    std::string n = d->d_name;
    if (n != "." && n != ".." && n != "dest" && n != "canary") __builtin_trap();
  }
  ::closedir(dir);
  if (!removeTree(root).ok()) __builtin_trap();
  return 0;
}
