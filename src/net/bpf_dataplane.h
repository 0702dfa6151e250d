// BpfDataplane: the Dataplane as the tc program in src/net/bpf, loaded
// from the skeleton compiled into the binary (no object file to find at
// run time). Maps are pinned under `pin_dir` when one is given, so a
// restarted agent finds conntrack, NAT state and its own previous tables.
#pragma once

#include <memory>
#include <string>

#include "net/dataplane.h"

namespace offcore {

// pin_dir "" = private maps (tests, benchmarks). The caller must be in the
// network namespace whose interfaces it will attach to.
Result<std::unique_ptr<Dataplane>> openBpfDataplane(const std::string& pin_dir);
// The tc program's fd, for running it by hand (the packet fixtures use
// BPF_PROG_TEST_RUN); -1 when `dp` is not a BPF dataplane.
int bpfProgramFd(const Dataplane& dp);

}  // namespace offcore
