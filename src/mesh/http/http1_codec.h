// HTTP/1.1 message parsing and serialization for the proxy, on Debian's
// http-parser (2.9). Incremental over arbitrary splits; bodies are streamed
// out as they arrive (the codec never holds a body); after each message the
// parser pauses so pipelined requests are handled one at a time, in order.
//
// It refuses what makes proxies disagree about message boundaries (request
// smuggling): Content-Length together with Transfer-Encoding, several
// Content-Length headers, a Transfer-Encoding other than "chunked", bad chunk
// sizes, CR/LF inside header values; and bounds the header section (60 KiB,
// 100 headers -> 431). Forwarded messages are re-serialized with our own
// framing, so the upstream never sees the client's framing bytes.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace offcore::mesh::http {

// Header names keep their case for forwarding; lookups ignore case.
using Headers = std::vector<std::pair<std::string, std::string>>;

// First value of `name` (case-insensitive), or nullptr.
const std::string* findHeader(const Headers& headers, std::string_view name);
void setHeader(Headers& headers, std::string_view name, std::string value);
void removeHeader(Headers& headers, std::string_view name);

struct MessageHead {
  // Request: method + target (path?query), path (no query). Response: status + reason.
  std::string method, target, path;
  int status = 0;
  std::string reason;
  int version_minor = 1;  // HTTP/1.x
  Headers headers;
  bool keep_alive = true;
  bool chunked = false;                    // the body is chunked on the wire
  std::optional<uint64_t> content_length;  // when given
  // Response only: the body runs until the connection closes.
  bool until_close = false;
  bool hasBody() const { return chunked || until_close || content_length.value_or(0) > 0; }
};

struct Limits {
  size_t max_header_bytes = 60 << 10;
  size_t max_headers = 100;
};

class Http1Parser {
 public:
  enum class Kind { kRequest, kResponse };
  class Callbacks {
   public:
    virtual ~Callbacks() = default;
    virtual void onHead(MessageHead&& head) = 0;
    virtual void onBody(std::string_view bytes) = 0;
    // A chunked body's trailer fields (validated like header fields), just
    // before onComplete.
    virtual void onTrailers(Headers&& /*trailers*/) {}
    // The message ended; the parser is paused until resume().
    virtual void onComplete() = 0;
    // Malformed input: the status to answer (400, 431, 501) and why. The
    // parser is dead afterwards. It may follow onHead (a bad body).
    virtual void onError(int status, const std::string& why) = 0;
  };

  Http1Parser(Kind kind, Callbacks* callbacks, Limits limits = {});
  ~Http1Parser();
  Http1Parser(const Http1Parser&) = delete;
  Http1Parser& operator=(const Http1Parser&) = delete;

  // Appends bytes and parses as far as allowed. Callbacks may call pause()
  // but must not destroy the parser.
  void feed(std::string_view bytes);
  // The peer closed: ends a read-until-close body, or reports a truncated
  // message (onError) when one was in progress.
  void finish();
  // Parses the next message from buffered bytes (after onComplete).
  void resume();
  bool paused() const { return paused_; }
  bool failed() const { return failed_; }
  // Bytes received but not yet parsed (pipelined requests wait here).
  size_t buffered() const { return pending_.size() - pending_off_; }
  // Mid-message (a head was delivered, the message is not complete).
  bool inMessage() const { return in_message_; }
  // Response parser: the request this response answers was a HEAD (no body).
  void expectNoBody(bool no_body) { no_body_ = no_body; }

 private:
  struct Impl;
  void parse();
  friend struct Impl;

  Kind kind_;
  Callbacks* callbacks_;
  Limits limits_;
  std::unique_ptr<Impl> impl_;
  std::string pending_;
  size_t pending_off_ = 0;
  bool paused_ = false;
  bool failed_ = false;
  bool in_message_ = false;
  bool no_body_ = false;
  bool parsing_ = false;
};

// Hop-by-hop headers (RFC 9110 7.6.1) plus those listed in Connection.
bool isHopByHop(std::string_view lower_name, const Headers& headers);
// ASCII lower case (header names compare and travel lower-cased in HTTP/2).
std::string lowerCase(std::string_view s);

// Serializes a head for forwarding: hop-by-hop headers dropped, our own
// framing (Content-Length when known, else chunked) and keep-alive set.
std::string serializeRequestHead(const MessageHead& head, const Headers& extra = {});
// close_delimited: an HTTP/1.0 client gets an until-close body as is (it
// knows no chunked encoding); the caller then closes after the body.
std::string serializeResponseHead(const MessageHead& head, const Headers& extra = {}, bool close_delimited = false);
// Body framing for a chunked message we send.
std::string encodeChunk(std::string_view bytes);
std::string_view lastChunk();

// A complete small response (errors the proxy answers itself).
std::string simpleResponse(int status, std::string_view body, const Headers& extra = {}, bool close = false);
const char* reasonPhrase(int status);

}  // namespace offcore::mesh::http
