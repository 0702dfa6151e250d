// Layered mode: one layer's tree, unpacked in overlay form, becomes an EROFS
// image.
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>

#include <cerrno>

#include "base/files.h"
#include "base/subprocess.h"
#include "image/converter.h"

namespace offcore {
namespace {

// Holes above this make the image chunk-based. Below it, the zeros written
// out cost less than chunked files do: they give up tail packing (a small
// file's data inline with its inode), so every small file takes a block.
constexpr uint64_t kChunkedAboveHoleBytes = 16ull << 20;
// Chunks of 64 KiB: an all-zero chunk is stored once and shared, and the
// chunk index stays at 4 bytes per 64 KiB of apparent size (512 KiB per
// 8 GiB); 4 KiB chunks would cost 16x that in index and mkfs time.
constexpr const char* kChunkSize = "--chunksize=65536";

}  // namespace

Result<LayerImage> buildLayerImage(const std::string& blob, const std::string& base, const LayerBounds& bounds,
                                   const std::string& layer) {
  LayerImage out;
  std::string tree = base + ".tree";
  out.path = base + ".erofs";
  (void)removeTree(tree);
  OC_TRY(makeDirs(tree));
  auto applied = applyLayerFile(blob, tree, WhiteoutMode::kOverlayForm, bounds, layer);
  if (!applied.ok()) {
    (void)removeTree(tree);
    // A bound error names the layer itself: the unpack's context in front
    // of it (scratch paths) would only bury it.
    const Error& e = applied.error();
    size_t own = e.code == EFBIG ? e.message.find("layer " + layer + " refused: ") : std::string::npos;
    if (own != std::string::npos) return makeError(e.message.substr(own), e.code);
    return e.wrap("unpack layer " + layer);
  }
  out.stats = *applied;
  out.chunked = out.stats.hole_bytes > kChunkedAboveHoleBytes;
  std::vector<std::string> argv{"mkfs.erofs", "--quiet", "--preserve-mtime"};
  if (out.chunked) argv.push_back(kChunkSize);
  argv.push_back(out.path);
  argv.push_back(tree);
  // mkfs.erofs dies with the converter (SIGTERM, SIGINT, SIGKILL): it would
  // otherwise read a tree the converter's cleanup is deleting, for minutes.
  SpawnOptions dies_with_us;
  dies_with_us.in_child = [parent = ::getpid()]() -> Status {
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) return errnoError("prctl(PR_SET_PDEATHSIG)");
    if (::getppid() != parent) return makeError("the converter is gone");
    return okStatus();
  };
  auto mk = runCapture(argv, dies_with_us);
  (void)removeTree(tree);
  if (!mk.ok()) return mk.error();
  if (mk->exit_code != 0) {
    ::unlink(out.path.c_str());
    return makeError("mkfs.erofs failed: " + trim(mk->err));
  }
  struct stat st {};
  if (::stat(out.path.c_str(), &st) != 0) return errnoError("stat " + out.path);
  out.fs_bytes = static_cast<uint64_t>(st.st_size);
  return out;
}

}  // namespace offcore
