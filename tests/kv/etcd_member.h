// A real single-member etcd for a test: its own data directory and free
// loopback ports, started on first use and killed (by pid) with the object.
#pragma once

#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <utility>
#include <vector>

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

  // The error says why etcd did not come up (its log's path). With tls,
  // clients must present a certificate of the test CA (tlsFiles()).
  Status start(bool tls = false) {
    if (dir_.empty()) return makeError("mkdtemp failed");
    tls_ = tls;
    if (tls) OC_TRY(makeCertificates());
    client_port_ = freePort();
    int peer = freePort();
    std::string c = std::string(tls ? "https" : "http") + "://127.0.0.1:" + std::to_string(client_port_);
    std::string p = "http://127.0.0.1:" + std::to_string(peer);
    std::vector<std::string> argv{"etcd",
                                  "--name",
                                  "t",
                                  "--data-dir",
                                  dir_ + "/data",
                                  "--listen-client-urls",
                                  c,
                                  "--advertise-client-urls",
                                  c,
                                  "--listen-peer-urls",
                                  p,
                                  "--initial-advertise-peer-urls",
                                  p,
                                  "--initial-cluster",
                                  "t=" + p,
                                  "--max-txn-ops",
                                  "20000"};
    if (tls) {
      argv.insert(argv.end(), {"--cert-file", dir_ + "/server.pem", "--key-file", dir_ + "/server.key",
                               "--trusted-ca-file", dir_ + "/ca.pem", "--client-cert-auth"});
    }
    argv_ = argv;
    return launch();
  }

  // Killed and started again on the same ports and data: what a client sees
  // when its member restarts.
  Status restart() {
    stop();
    return launch();
  }

  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    (void)waitExit(pid_);
    pid_ = -1;
  }

 private:
  Status launch() {
    SpawnOptions so;
    so.output_file = dir_ + "/etcd.log";
    // A test process that dies (a sanitizer's abort) takes its etcd with it.
    so.in_child = [] {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      return okStatus();
    };
    auto pid = spawn(argv_, so);
    if (!pid.ok()) return pid.error();
    pid_ = *pid;
    auto probe = makeEtcdClient(options());
    std::string last;
    for (int i = 0; i < 100; ++i) {
      auto r = probe->range("probe", "");
      if (r.ok()) return okStatus();
      last = r.error().message;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    auto log = readFile(dir_ + "/etcd.log");
    std::string tail = log.ok() ? log->substr(log->size() > 400 ? log->size() - 400 : 0) : "";
    return makeError("etcd did not answer within 5 s (" + last + "); its log ends: " + tail);
  }

 public:
  EtcdOptions options() const {
    EtcdOptions o;
    o.endpoints = {std::string(tls_ ? "https" : "http") + "://127.0.0.1:" + std::to_string(client_port_)};
    o.request_timeout_ms = 3000;
    if (tls_) {
      o.ca_file = dir_ + "/ca.pem";
      o.cert_file = dir_ + "/client.pem";
      o.key_file = dir_ + "/client.key";
    }
    return o;
  }
  const std::string& dir() const { return dir_; }
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
  // A CA, the member's certificate (for 127.0.0.1) and a client's, by the openssl CLI.
  Status makeCertificates() {
    auto ssl = [&](std::vector<std::string> args) {
      args.insert(args.begin(), "openssl");
      return runChecked(args);
    };
    const std::string d = dir_ + "/";
    OC_TRY(writeFileAtomic(d + "server.cnf", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n"));
    OC_TRY(writeFileAtomic(d + "client.cnf", "extendedKeyUsage=clientAuth\n"));
    const std::vector<std::string> ec{"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"};
    auto req = [&](const std::string& name, const std::string& cn) {
      std::vector<std::string> a{"req"};
      a.insert(a.end(), ec.begin(), ec.end());
      a.insert(a.end(), {"-keyout", d + name + ".key", "-out", d + name + ".csr", "-subj", "/CN=" + cn});
      return ssl(a);
    };
    std::vector<std::string> ca{"req", "-x509"};
    ca.insert(ca.end(), ec.begin(), ec.end());
    ca.insert(ca.end(), {"-keyout", d + "ca.key", "-out", d + "ca.pem", "-days", "1", "-subj", "/CN=offcore-test-ca"});
    OC_TRY(ssl(ca));
    for (const auto& [name, cn] : {std::pair<std::string, std::string>{"server", "etcd"}, {"client", "node-a"}}) {
      OC_TRY(req(name, cn));
      OC_TRY(ssl({"x509", "-req", "-in", d + name + ".csr", "-CA", d + "ca.pem", "-CAkey", d + "ca.key",
                  "-CAcreateserial", "-out", d + name + ".pem", "-days", "1", "-extfile", d + name + ".cnf"}));
    }
    return okStatus();
  }

  std::string dir_;
  bool tls_ = false;
  int client_port_ = 0;
  pid_t pid_ = -1;
  std::vector<std::string> argv_;  // how start() ran it, for restart()
};

}  // namespace offcore::kv
