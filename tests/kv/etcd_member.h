// A real single-member etcd for a test: its own data directory and free
// loopback ports, started on first use and killed (by pid) with the object.
#pragma once

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "base/files.h"
#include "base/subprocess.h"
#include "kv/etcd_client.h"

namespace offcore::kv {

class EtcdMember {
 public:
  EtcdMember() {
    char tmpl[] = "/tmp/oc-etcd-XXXXXX";
    if (::mkdtemp(tmpl)) dir_ = tmpl;
  }
  ~EtcdMember() {
    stop();
    (void)removeTree(dir_);
  }
  EtcdMember(const EtcdMember&) = delete;
  EtcdMember& operator=(const EtcdMember&) = delete;

  // The error says why etcd did not come up (its log's path).
  Status start() {
    if (dir_.empty()) return makeError("mkdtemp failed");
    client_port_ = freePort();
    int peer = freePort();
    std::string c = "http://127.0.0.1:" + std::to_string(client_port_);
    std::string p = "http://127.0.0.1:" + std::to_string(peer);
    SpawnOptions so;
    so.output_file = dir_ + "/etcd.log";
    auto pid = spawn({"etcd", "--name", "t", "--data-dir", dir_ + "/data", "--listen-client-urls", c,
                      "--advertise-client-urls", c, "--listen-peer-urls", p, "--initial-advertise-peer-urls", p,
                      "--initial-cluster", "t=" + p, "--max-txn-ops", "20000"},
                     so);
    if (!pid.ok()) return pid.error();
    pid_ = *pid;
    auto probe = makeEtcdClient(options());
    for (int i = 0; i < 100; ++i) {
      if (probe->range("probe", "").ok()) return okStatus();
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return makeError("etcd did not answer within 5 s; see " + dir_ + "/etcd.log");
  }

  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    (void)waitExit(pid_);
    pid_ = -1;
  }

  EtcdOptions options() const {
    EtcdOptions o;
    o.endpoints = {"http://127.0.0.1:" + std::to_string(client_port_)};
    o.request_timeout_ms = 3000;
    return o;
  }
  std::string url() const { return "etcd://127.0.0.1:" + std::to_string(client_port_); }

  // A loopback port nobody listens on (bound, then released).
  static int freePort() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
              ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
    ::close(fd);
    return ok ? ntohs(a.sin_port) : 0;
  }

 private:
  std::string dir_;
  int client_port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace offcore::kv
