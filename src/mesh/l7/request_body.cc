#include "mesh/l7/request_body.h"

#include <algorithm>

namespace offcore::mesh::l7 {

void RequestBody::append(std::string_view bytes) {
  if (bytes.empty()) return;
  received_ += bytes.size();
  buf_.append(bytes);
  compact();
  peak_ = std::max(peak_, buf_.size());
}

void RequestBody::finish(http::Headers trailers) {
  complete_ = true;
  trailers_ = std::move(trailers);
}

void RequestBody::clear() {
  discarded_ += off_;
  std::string().swap(buf_);
  off_ = 0;
}

bool RequestBody::rewind() {
  if (!replayable()) return false;
  off_ = 0;
  return true;
}

void RequestBody::consumed(size_t n) {
  off_ += std::min(n, buf_.size() - off_);
  compact();
}

// Past the limit the sent bytes are of no more use: drop them (in steps, so
// that the unsent tail is not moved for every small send).
void RequestBody::compact() {
  if (received_ <= limit_ || off_ == 0) return;
  if (off_ < buf_.size() && off_ < buf_.size() / 2 && off_ < (64u << 10)) return;
  discarded_ += off_;
  buf_.erase(0, off_);
  off_ = 0;
}

}  // namespace offcore::mesh::l7
