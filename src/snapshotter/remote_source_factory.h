// The one place the snapshotter command gets its RemoteSource. The default
// (no_remote_source.cc) returns nullptr: a plain overlayfs snapshotter. The
// image subsystem replaces that file with one that builds the real source.
#pragma once

#include <memory>
#include <string>

#include "base/result.h"
#include "snapshotter/remote_source.h"

namespace offcore {

// node: the offcore node whose image service serves layers; root: the
// snapshotter's --root, for any state the source keeps. nullptr means "no
// remote layers".
Result<std::unique_ptr<RemoteSource>> makeRemoteSource(const std::string& node, RemoteMode mode,
                                                       const std::string& root);

}  // namespace offcore
