// Shared by the disk commands (disk_commands.cc) and the SoC side that
// serves a disk (disk_serve.cc).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"
#include "cli/common.h"
#include "nvme/host/host.h"
#include "nvme/host/nvme_uri.h"
#include "volumes/nexus_state.h"

namespace offcore {

// nvme-tcp://ADDR[:PORT]/NQN; a disk needs the NQN.
Result<nvme::NvmeUri> parseDiskUri(const std::string& uri);

std::string disksDir(const CliContext& ctx, const std::string& node);
// The node keeps each disk's DH-HMAC-CHAP secrets here (0700 dir, 0600
// files), never on a command line: argv is world-readable in /proc.
std::string secretsDir(const CliContext& ctx, const std::string& node);

struct DiskSecrets {
  std::string secret;       // DHHC-1 text; empty: no authentication
  std::string ctrl_secret;  // DHHC-1 text; empty: the target is not authenticated
};

// A secret file: "dhchap_secret=DHHC-1:..:" and optionally
// "dhchap_ctrl_secret=DHHC-1:..:" lines, or a bare secret on the first line.
// It must not be readable by group or others.
Result<DiskSecrets> readSecretFile(const std::string& path);
// Reads a secret file (readSecretFile) into an initiator's DH-HMAC-CHAP
// keys; errors name the file.
Status loadHostSecrets(const std::string& path, nvme::HostOptions& options);
// Parses both secrets, so a typo fails at attach rather than in the SoC.
Status checkSecrets(const DiskSecrets& s);

// The node's keeper of disk FUSE connections (agent service "disks-fds"),
// and the name a disk's connection is kept under.
std::string diskKeeper(const CliContext& ctx, const std::string& node);
std::string keptName(const std::string& file);

// A replica's name in a nexus journal and its claim: where it lives (gateway
// address and volume NQN), so a replica moved elsewhere is a new one.
std::string replicaName(const nvme::NvmeUri& d);

// How long a disk waits for a lost gateway: io_timeout bounds one request,
// fast_io_fail (after the loss) makes waiting and new I/O fail at once,
// ctrl_loss ends reconnecting. Seconds; -1: off.
struct DiskTimeouts {
  int io = 30, fast_io_fail = 5, ctrl_loss = 600;
};

Status checkTimeouts(const DiskTimeouts& t);

// What `disk serve` serves: one volume, or (replicas) a nexus mirroring
// it over several, whose state lives in `journal`.
struct DiskServeSpec {
  std::string uri;
  std::vector<std::string> replicas;             // further nvme-tcp:// URIs of the same volume
  std::string journal;                           // the nexus journal (with replicas): DIR/ID.json or etcd:ID
  int claim_ttl_s = volumes::kDefaultClaimTtlS;  // the claims' lease, when the journal is in etcd
  std::string file, node, secret_file;
  int queues = 0, depth = 32;
  DiskTimeouts timeouts;
};

// `disk serve`: the SoC side of one disk, until SIGTERM/SIGINT.
int serveDisk(const CliContext& ctx, const DiskServeSpec& spec);

}  // namespace offcore
