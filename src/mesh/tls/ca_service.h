// The keeper's side of the CA channel (csr_wire.h). The keeper holds the CA;
// its proxy worker never opens it and asks for each certificate here:
//   - CaService decides: it signs only an identity of a mesh pod scheduled
//     on this node (the keeper reads the cluster state itself, per request),
//     only after the CSR's signature verified, and only the CSR's public key
//     is used; the certificate's content and lifetime (capped) are the CA's;
//   - CaChannel is one worker epoch's end of a socketpair on the keeper's
//     loop. The worker is hostile: a frame that does not decode gets one
//     last refusal and the channel is closed; requests above a rate are
//     refused. The keeper itself never stops for anything said here.
#pragma once

#include <chrono>
#include <functional>
#include <set>
#include <string>

#include "base/event_loop.h"
#include "base/result.h"
#include "mesh/tls/ca.h"
#include "mesh/tls/csr_wire.h"

namespace offcore::mesh::tls {

class CaService {
 public:
  // The SPIFFE IDs of the mesh pods scheduled on this node, now.
  using NodeIdentities = std::function<Result<std::set<std::string>>()>;

  // `ca` must outlive the service; certificates live at most `max_ttl`.
  CaService(Ca& ca, std::string node, Seconds max_ttl, NodeIdentities identities);

  // One request's answer; a refusal carries a one-line reason.
  CsrResponse handle(const CsrRequest& request);
  // One frame's payload -> the response frame. An error means the frame
  // did not decode: answer it with error() and close the channel.
  Result<std::string> handleFrame(std::string_view payload);

 private:
  Ca& ca_;
  std::string node_;
  Seconds max_ttl_;
  NodeIdentities identities_;
};

class CaChannel {
 public:
  struct Options {
    // Token bucket: a new node epoch asks for all its identities at once.
    double burst = 256;
    double per_second = 64;
  };
  // Owns `fd` (the keeper's end, made non-blocking here). `on_closed` runs
  // once, from a posted task, after the channel closed (EOF, a bad frame,
  // an unwritable answer); the owner may destroy the channel then.
  CaChannel(EventLoop& loop, CaService& service, int fd, std::function<void(const std::string& why)> on_closed,
            Options options);
  CaChannel(EventLoop& loop, CaService& service, int fd, std::function<void(const std::string& why)> on_closed)
      : CaChannel(loop, service, fd, std::move(on_closed), Options{}) {}
  ~CaChannel();
  CaChannel(const CaChannel&) = delete;
  CaChannel& operator=(const CaChannel&) = delete;

  Status start();
  uint64_t requests() const { return requests_; }

 private:
  void onReadable();
  bool admit();
  void send(const std::string& frame);
  void close(const std::string& why);

  EventLoop& loop_;
  CaService& service_;
  int fd_;
  std::function<void(const std::string&)> on_closed_;
  Options options_;
  FrameReader reader_;
  double tokens_;
  std::chrono::steady_clock::time_point refilled_;
  uint64_t requests_ = 0;
  bool closed_ = false;
};

}  // namespace offcore::mesh::tls
