// A request body on its way upstream, streamed as it arrives (Envoy's
// behaviour): the bytes received and not yet sent to the current attempt,
// plus, while the body read so far fits in `limit`, the bytes already sent,
// so that a retry can replay the body from its first byte (Envoy's
// retry/shadow buffer limit). Past `limit` the sent bytes are dropped and
// the request can no longer be retried.
//
// Memory stays bounded whatever the body size: the owner stops reading the
// downstream while backlog() is above `limit` (paused()), and resumes it
// once the upstream has taken the backlog down to half of it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "mesh/http/http1_codec.h"

namespace offcore::mesh::l7 {

class RequestBody {
 public:
  explicit RequestBody(size_t limit) : limit_(limit) {}

  // Bytes from the downstream.
  void append(std::string_view bytes);
  // The downstream request is over (trailers: HTTP/2 or chunked trailers).
  void finish(http::Headers trailers);
  // Drops everything (the exchange is over).
  void clear();

  bool complete() const { return complete_; }
  const http::Headers& trailers() const { return trailers_; }
  uint64_t received() const { return received_; }
  // Whether every byte since the first is still held (a new attempt can
  // send the whole body).
  bool replayable() const { return discarded_ == 0; }
  // Starts a new attempt at the first byte; false when not replayable().
  bool rewind();

  // What the current attempt has not sent yet; consumed(n) once n of them
  // went to the upstream.
  std::string_view unsent() const { return std::string_view(buf_).substr(off_); }
  void consumed(size_t n);
  // The current attempt has sent the whole body.
  bool allSent() const { return complete_ && off_ == buf_.size(); }

  // Unsent bytes; above limit the downstream must be paused.
  size_t backlog() const { return buf_.size() - off_; }
  bool overLimit() const { return backlog() > limit_; }
  bool underLowMark() const { return backlog() <= limit_ / 2; }
  // Bytes held now and at most (sent copies included).
  size_t held() const { return buf_.size(); }
  size_t peakHeld() const { return peak_; }

 private:
  void compact();

  size_t limit_;
  std::string buf_;
  size_t off_ = 0;  // buf_[0, off_) went to the current attempt
  uint64_t received_ = 0;
  uint64_t discarded_ = 0;  // sent bytes dropped (past limit_)
  size_t peak_ = 0;
  bool complete_ = false;
  http::Headers trailers_;
};

}  // namespace offcore::mesh::l7
