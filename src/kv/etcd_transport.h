// The HTTP side of EtcdClient: POST a JSON request to one member of the
// cluster, moving on to the next one when a member cannot be reached, times
// out or is without a leader. Shared by the unary calls and the watches.
#pragma once

#include <curl/curl.h>

#include <atomic>
#include <mutex>
#include <string>
#include <vector>

#include "base/result.h"
#include "kv/etcd_client.h"

namespace offcore::kv {

class EtcdTransport {
 public:
  explicit EtcdTransport(EtcdOptions o);
  ~EtcdTransport();
  EtcdTransport(const EtcdTransport&) = delete;
  EtcdTransport& operator=(const EtcdTransport&) = delete;

  // The member's answer to a 200; a definite error from a member (errno from
  // its gRPC code: NOT_FOUND ENOENT, OUT_OF_RANGE ERANGE, INVALID_ARGUMENT
  // EINVAL, RESOURCE_EXHAUSTED ENOSPC); or, when no member answered, one line
  // naming each member's failure (code EHOSTUNREACH).
  // PERMISSION_DENIED is EACCES (the message names the user).
  Result<std::string> call(const std::string& path, const std::string& body);
  // The "Authorization: <token>" header for this client's user ("" without
  // one); fresh: a new token even if one is held (the last one was refused).
  Result<std::string> authHeader(bool fresh);

  // Timeouts (connect only: a watch runs for as long as it lives), TLS, no signals.
  void configure(CURL* h) const;
  const EtcdOptions& options() const { return o_; }
  size_t preferred() const { return preferred_.load(); }
  void prefer(size_t i) { preferred_.store(i % o_.endpoints.size()); }
  std::string describe() const;

 private:
  CURL* takeHandle();
  void giveBack(CURL* h);
  // One request with these extra headers ("" = none).
  Result<std::string> post(const std::string& path, const std::string& body, const std::string& header);

  EtcdOptions o_;
  std::atomic<size_t> preferred_{0};
  std::mutex mu_;
  std::vector<CURL*> idle_;  // guarded by mu_; each keeps its connections
  std::mutex auth_mu_;
  std::string token_;  // guarded by auth_mu_
};

}  // namespace offcore::kv
