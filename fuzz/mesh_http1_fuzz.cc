// The node proxy parses HTTP/1 from every mesh pod (and from upstreams):
// malformed or hostile bytes (smuggling attempts, oversized headers, bad
// chunk sizes) must end in onError with a 4xx/5xx status, never a crash,
// and whatever is accepted must re-serialize into a head the parser reads
// back with the same method, target and framing; chunked trailers that are
// accepted are well-formed fields.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "mesh/http/http1_codec.h"

namespace {

using offcore::mesh::http::Http1Parser;
using offcore::mesh::http::MessageHead;

struct Sink : Http1Parser::Callbacks {
  std::vector<MessageHead> heads;
  size_t body = 0;
  bool complete = false;
  int status = 0;
  void onHead(MessageHead&& h) override { heads.push_back(std::move(h)); }
  void onBody(std::string_view b) override { body += b.size(); }
  // Trailers are forwarded like header fields: the same validation holds.
  void onTrailers(offcore::mesh::http::Headers&& t) override {
    for (const auto& [k, v] : t)
      if (k.empty() || k.find_first_of(":\r\n ") != std::string::npos || v.find_first_of("\r\n") != std::string::npos)
        __builtin_trap();
  }
  void onComplete() override { complete = true; }
  void onError(int s, const std::string&) override {
    if (s != 400 && s != 431 && s != 501) __builtin_trap();
    status = s;
  }
};

void run(Http1Parser::Kind kind, const uint8_t* data, size_t size, size_t split) {
  Sink s;
  Http1Parser p(kind, &s);
  for (size_t i = 0; i < size && !p.failed(); i += split) {
    p.feed(std::string_view(reinterpret_cast<const char*>(data) + i, std::min(split, size - i)));
    while (p.paused() && !p.failed()) {
      s.complete = false;
      p.resume();
      if (!s.complete) break;
    }
  }
  p.finish();
  if (kind != Http1Parser::Kind::kRequest || s.status != 0) return;
  for (const auto& h : s.heads) {
    std::string again = offcore::mesh::http::serializeRequestHead(h);
    Sink r;
    Http1Parser q(kind, &r, {1 << 20, 1000});
    q.feed(again);
    if (r.heads.size() != 1 || r.status != 0) __builtin_trap();
    if (r.heads[0].method != h.method || r.heads[0].target != h.target || r.heads[0].chunked != h.chunked ||
        r.heads[0].content_length != h.content_length)
      __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 || size > 128 * 1024) return 0;
  size_t split = 1 + data[0] % 64;
  run(Http1Parser::Kind::kRequest, data + 1, size - 1, split);
  run(Http1Parser::Kind::kRequest, data + 1, size - 1, size);
  run(Http1Parser::Kind::kResponse, data + 1, size - 1, split);
  return 0;
}
