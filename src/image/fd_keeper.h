// The fd keeper: a tiny process (agent service "images-fds") that holds a
// dup of each layer's /dev/fuse fd for the image service. While it holds
// one, the FUSE connection survives the image service dying; the restarted
// service takes the fds back and adopts the connections (FuseDisk::adopt),
// so mounts stay up and reads in flight are resent.
//
// Protocol: SOCK_SEQPACKET on a unix socket, one request per packet,
// "PUT name" (+ one fd by SCM_RIGHTS), "GET name", "DEL name"; replies
// "OK" (+ the fd for GET) or "NONE" / "ERR message".
#pragma once

#include <string>

#include "base/result.h"

namespace offcore {

std::string fdKeeperSocket(const std::string& run_root, const std::string& node);

// Serves until SIGTERM/SIGINT; returns the exit code.
int runFdKeeper(const std::string& socket_path);

Status fdKeeperPut(const std::string& socket_path, const std::string& name, int fd);
// -1 when the keeper holds nothing under that name.
Result<int> fdKeeperGet(const std::string& socket_path, const std::string& name);
Status fdKeeperDel(const std::string& socket_path, const std::string& name);

}  // namespace offcore
