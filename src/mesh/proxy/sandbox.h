// The proxy worker's sandbox. The worker parses every byte of the node's
// traffic, so it is the process an attacker gets first; it must not reach
// the CA key (its keeper holds it) nor anything that would give it back the
// keeper's power. Entered once, after the worker has its inherited fds and
// before it serves, while it is still single-threaded:
//   - a private mount namespace (propagation private: nothing leaks out);
//   - /dev replaced by a tmpfs with null, zero, full, random, urandom, tty
//     only (no block devices to read the CA off the disk);
//   - an empty read-only tmpfs over the CA directory, /dev/null over each
//     hidden file (the mesh CA's etcd password);
//   - every mount read-only (the cluster state the keeper decides from, the
//     binaries a later epoch runs, /proc/sys, /sys) except the `writable`
//     paths (the node's run directory: mesh.sock, the access log);
//   - capabilities: bounding, permitted and effective sets cut to `keep`,
//     inheritable and ambient empty, then PR_SET_NO_NEW_PRIVS. Children it
//     runs (`ip`) get at most `keep`.
// Once its own unix sockets exist (mesh.sock), lockUnixSockets() takes
// away the rest: the worker keeps uid 0, so the file system alone would
// still let it connect to root's sockets (the agent's API among them).
// docs/MESH.md "Identity and mTLS" lists what it does not cover.
#pragma once

#include <string>
#include <vector>

#include "base/result.h"

namespace offcore::mesh {

struct SandboxOptions {
  std::string ca_dir;  // must exist
  // Files the worker must not read (the mesh CA's etcd password): each
  // becomes /dev/null in its view. Absent ones are skipped.
  std::vector<std::string> hidden_files;
  std::vector<std::string> writable;  // must exist
  std::vector<int> keep_caps;         // CAP_* numbers
};

// Capabilities a worker needs: IP_TRANSPARENT, routes (NET_ADMIN, NET_RAW),
// the HBONE port (NET_BIND_SERVICE), and SYS_NICE with a real-time priority.
std::vector<int> workerCapabilities(bool rt_priority);

// For the current process; call before any thread starts (unshare of the
// mount namespace refuses a process whose threads share its fs state).
Status enterSandbox(const SandboxOptions& options);

// A seccomp filter on every thread of the process (and the children it
// runs): socket(AF_UNIX, …) fails with EACCES, so no new unix socket can
// connect anywhere; io_uring (which would bypass the filter) and foreign
// syscall ABIs (x32, i386) fail with ENOSYS. Sockets it already holds
// (listening, accepted, socketpairs) keep working. Needs no_new_privs
// (enterSandbox sets it) or CAP_SYS_ADMIN.
Status lockUnixSockets();

}  // namespace offcore::mesh
