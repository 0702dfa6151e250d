// The default prefetch list of an image, worked out at conversion from the
// image alone (no trace run): the program its config starts (entrypoint, or
// cmd), that program's ELF interpreter and the shared libraries it loads,
// transitively, found the way glibc's ld.so finds them (DT_RPATH,
// LD_LIBRARY_PATH from the config's env, DT_RUNPATH with $ORIGIN, the
// image's /etc/ld.so.conf with its includes, the default directories; musl's
// path file for musl images); for a script, its interpreter line (through
// `env NAME`) and a `sh -c "prog ..."` command's program; for a JDK launcher,
// the VM lib/jvm.cfg names (libjvm.so, dlopen()ed, and its CDS archive).
//
// planPrefetch then maps those files, and the directories a lookup of them
// reads, onto byte ranges of each layer's EROFS image (FIEMAP on the mounted
// layers, plus each file's inode), which is what a node prefetches first.
//
// Everything is resolved inside the image's root (openat2 RESOLVE_IN_ROOT,
// RESOLVE_BENEATH in a layer): an image's absolute symlink never leads to
// the converter's own files. The image is untrusted: a loop of symlinks, a
// library that names itself, a huge dependency graph are all bounded.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "base/result.h"

namespace offcore {

struct StartSpec {
  std::vector<std::string> entrypoint, cmd, env;  // from the image config
  std::string working_dir;
};

struct StartFiles {
  std::vector<std::string> files;         // absolute paths in the image, load order
  std::vector<std::string> loader_files;  // read by the loader besides them (/etc/ld.so.cache)
  std::string note;                       // why the list is empty or partial ("" when complete)
};

using ByteRanges = std::vector<std::pair<uint64_t, uint64_t>>;  // (offset, length)

struct PrefetchPlan {
  StartFiles start;
  std::vector<ByteRanges> layer_ranges;  // per layer, bottom first: what to fetch first
};

// root: a directory holding the image's merged rootfs.
Result<StartFiles> findStartFiles(const std::string& root, const StartSpec& spec);

struct PlanLayer {
  std::string dir;          // the layer's EROFS, mounted (overlay form)
  uint64_t inode_base = 0;  // erofsInodeBase() of its image; 0: inodes not added
};

// Where nid 0's inode sits in an EROFS image (meta_blkaddr << blkszbits).
Result<uint64_t> erofsInodeBase(const std::string& image_file);

// layers: bottom first; root: their overlay (or the one layer).
Result<PrefetchPlan> planPrefetch(const std::vector<PlanLayer>& layers, const std::string& root, const StartSpec& spec);

}  // namespace offcore
