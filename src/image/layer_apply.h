// Unpacks an OCI image layer (tar, tar+gzip, tar+zstd) into a directory, the
// way containerd's overlayfs applier does, so the merged view of the result
// is byte-for-byte what containerd would mount.
//
// Security: nothing is created or modified outside dest_dir. Parent
// directories are resolved with openat2(RESOLVE_IN_ROOT) against dest_dir (a
// symlink "etc -> /etc" resolves to dest_dir/etc), and the final component is
// only ever touched with *at() calls that do not follow symlinks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "base/result.h"
#include "image/layer_bounds.h"

namespace offcore {

enum class WhiteoutMode {
  // One filesystem per layer (what one EROFS layer image is built from):
  // .wh.NAME becomes a 0/0 char device NAME, .wh..wh..opq becomes the xattr
  // trusted.overlay.opaque="y" on its directory.
  kOverlayForm,
  // A flat rootfs: .wh.NAME removes NAME (recursively) from dest_dir, and
  // .wh..wh..opq removes every child of its directory that this layer did not
  // itself create.
  kApplyInPlace,
};

struct ApplyStats {
  uint64_t entries = 0;  // every tar entry, whiteouts included
  uint64_t files = 0, dirs = 0, symlinks = 0, hardlinks = 0;
  uint64_t devices = 0;  // char, block and fifo
  uint64_t whiteouts = 0, opaque_dirs = 0;
  uint64_t bytes = 0;  // file data written (all-zero blocks left out, see below)
  // Regular files are written sparse: holes of sparse tar entries and
  // all-zero 4 KiB blocks of their data are left unwritten (a new file reads
  // zeros there). hole_bytes is what that saved: sizes minus bytes written.
  uint64_t hole_bytes = 0;
  uint64_t sparse_files = 0;  // files with at least one hole
};

// dest_dir must exist. On error dest_dir holds a partial layer: callers
// unpack into a scratch directory and discard it on failure.
//
// The layer is held to bounds (against the blob's size; layer names it in
// the error): a file whose declared size takes the layer past the limit is
// refused before anything of it is written, and the decompressed stream is
// cut off as soon as it passes the limit. LayerBounds::unlimited() turns
// this off.
Result<ApplyStats> applyLayerFile(const std::string& blob_path, const std::string& dest_dir, WhiteoutMode mode,
                                  const LayerBounds& bounds = {}, const std::string& layer = "");
Result<ApplyStats> applyLayerMemory(const void* data, size_t len, const std::string& dest_dir, WhiteoutMode mode,
                                    const LayerBounds& bounds = {}, const std::string& layer = "");

}  // namespace offcore
