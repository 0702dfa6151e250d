// The fd keeper: a tiny process (an agent service of the node, "images-fds"
// for the image service, "disks-fds" for attached disks) that holds a dup of
// each FUSE connection's /dev/fuse fd for the service serving it. While it
// holds one, the FUSE connection survives that service dying; the restarted
// service takes the fd back and adopts the connection (FuseDisk::adopt), so
// mounts and loop devices stay up and requests in flight are resent.
//
// Protocol: SOCK_SEQPACKET on a unix socket, one request per packet,
// "PUT name" (+ one fd by SCM_RIGHTS), "GET name", "DEL name"; replies
// "OK" (+ the fd for GET) or "NONE" / "ERR message".
#pragma once

#include <string>

#include "base/result.h"

namespace offcore {

// run_root/node/<owner>-fds.sock; owner is "images" or "disks".
std::string fdKeeperSocket(const std::string& run_root, const std::string& node, const std::string& owner);

// Serves until SIGTERM/SIGINT; returns the exit code.
int runFdKeeper(const std::string& socket_path);

Status fdKeeperPut(const std::string& socket_path, const std::string& name, int fd);
// -1 when the keeper holds nothing under that name.
Result<int> fdKeeperGet(const std::string& socket_path, const std::string& name);
// True when a keeper answers on socket_path.
bool fdKeeperAnswers(const std::string& socket_path);

Status fdKeeperDel(const std::string& socket_path, const std::string& name);

}  // namespace offcore
