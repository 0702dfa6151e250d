// HTTP/2 upstreams (h2c, prior knowledge, nghttp2 client): one connection
// per pool key carries many concurrent streams. Used for Service ports whose
// appProtocol says the server speaks HTTP/2 (grpc, http2, h2c).
//
// - A connection takes new streams while it has no GOAWAY, fewer active
//   streams than the peer's SETTINGS_MAX_CONCURRENT_STREAMS (and our cap),
//   and fewer than max_requests streams in total (maxRequestsPerConnection).
// - GOAWAY: no new streams; streams above last_stream_id are reported as
//   refused (safe to retry), the others finish; then the connection closes.
// - RST_STREAM(REFUSED_STREAM) is reported as refused too.
// - Flow control: no automatic WINDOW_UPDATE; the exchange calls consume()
//   once a response chunk has gone downstream, so a slow client holds back
//   only its own stream (a 256 KiB window), never the whole connection.
#pragma once

#include <chrono>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/event_loop.h"
#include "base/result.h"
#include "mesh/http/http1_codec.h"
#include "mesh/l7/upstream_pool.h"

struct nghttp2_session;

namespace offcore::mesh::l7 {

// What one stream reports to its exchange (never after cancel()).
class H2StreamHandler {
 public:
  virtual ~H2StreamHandler() = default;
  // The final response head (1xx are skipped); end_stream: no body, no trailers.
  virtual void onH2Head(http::MessageHead&& head, bool end_stream) = 0;
  // Call H2Conn::consume(id, n) once these bytes are passed on.
  virtual void onH2Data(std::string_view bytes) = 0;
  virtual void onH2Trailers(http::Headers&& trailers) = 0;
  virtual void onH2End() = 0;
  // The stream failed. refused: the server did not process the request
  // (REFUSED_STREAM, or above a GOAWAY's last_stream_id): retrying is safe.
  virtual void onH2Reset(bool refused, const std::string& why) = 0;
  // A streamed request body (submitStreaming): copies up to len bytes;
  // eof with the last ones. 0 bytes and !eof: none yet, H2Conn::resumeBody
  // once there are.
  virtual size_t readBody(uint8_t* /*buf*/, size_t /*len*/, bool& eof) {
    eof = true;
    return 0;
  }
  // Asked at the end of a streamed body: request trailers (lower-case
  // names); empty: the last DATA frame ends the stream.
  virtual http::Headers requestTrailers() { return {}; }
};

class H2Conn : public Transport::Callbacks {
 public:
  static constexpr uint32_t kMaxStreamsCap = 1000;  // whatever the peer allows
  static constexpr int32_t kStreamWindow = 256 << 10;
  static constexpr int32_t kConnWindow = 16 << 20;

  // max_requests: streams over the connection's life (0 = unlimited).
  // on_gone: the connection is finished (closed, or drained after GOAWAY);
  // the owner destroys it later, not inside the callback.
  H2Conn(EventLoop& loop, std::unique_ptr<UpstreamConn> conn, uint32_t max_requests,
         std::function<void(H2Conn*)> on_gone);
  ~H2Conn() override;

  // Whether a new stream may start now.
  bool available() const;
  // Starts a request (head + the whole body, end of stream after it).
  Result<int32_t> submit(const http::MessageHead& head, const std::string& body, H2StreamHandler* handler);
  // Starts a request whose body the handler streams (readBody) under the
  // stream's flow control; content_length when known; !has_body: the
  // HEADERS frame ends the stream. A response that ends before the request
  // body does completes the stream (onH2End) and stops the body with
  // RST_STREAM(NO_ERROR), as RFC 9113 8.1 allows.
  Result<int32_t> submitStreaming(const http::MessageHead& head, std::optional<uint64_t> content_length, bool has_body,
                                  H2StreamHandler* handler);
  // More body (or its end) for a stream whose readBody had none.
  void resumeBody(int32_t id);
  // The exchange gives the stream up: RST_STREAM(CANCEL), no more callbacks.
  void cancel(int32_t id);
  // Response bytes passed on downstream: reopen the flow-control window.
  void consume(int32_t id, size_t n);
  // No new streams; close once the active ones are over.
  void shutdown();

  size_t active() const { return streams_.size(); }
  uint64_t started() const { return started_; }
  size_t peakActive() const { return peak_active_; }
  bool gone() const { return gone_; }

  void onData(std::string_view bytes) override;
  void onEnd() override;
  void onClosed(const Status& why) override;
  void onDrained() override;

 private:
  struct Stream;
  struct Callbacks;
  friend struct Callbacks;
  Result<int32_t> start(const http::MessageHead& head, std::optional<uint64_t> content_length, bool has_body,
                        std::unique_ptr<Stream> st);
  void flush();
  void scheduleFlush();
  void failAll(const std::string& why);
  void earlyEnd(int32_t id);
  void checkDone();
  void finish();

  EventLoop& loop_;
  std::unique_ptr<UpstreamConn> conn_;
  uint32_t max_requests_;
  std::function<void(H2Conn*)> on_gone_;
  nghttp2_session* session_ = nullptr;
  std::map<int32_t, std::unique_ptr<Stream>> streams_;
  uint64_t started_ = 0;
  size_t peak_active_ = 0;
  bool goaway_ = false;
  bool in_recv_ = false;
  bool flush_posted_ = false;
  bool gone_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// HTTP/2 connections by pool key (poolKey(target)), connecting ones
// included so that concurrent requests share one connection.
class H2Pool {
 public:
  using Ready = std::function<void(Result<H2Conn*>)>;
  H2Pool(EventLoop& loop, std::chrono::milliseconds idle_timeout);
  ~H2Pool();

  // A connection of `key` that takes a new stream now, or nullptr.
  H2Conn* find(const std::string& key);
  // Waits for a connection of `key` being made (false: none with room).
  bool join(const std::string& key, Ready ready);
  // Makes a new connection (the caller counted it in cluster's connections).
  void connect(const std::string& key, Connector& connector, const ConnectTarget& target,
               std::chrono::milliseconds timeout, route::ClusterRuntime* cluster, uint32_t max_requests, Ready ready);

  size_t connections() const;
  uint64_t connectionsOpened() const { return opened_; }

 private:
  struct Entry;
  void gone(Entry* e);
  void armIdle(Entry* e);

  EventLoop& loop_;
  std::chrono::milliseconds idle_timeout_;
  std::map<std::string, std::list<std::unique_ptr<Entry>>> entries_;
  uint64_t opened_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace offcore::mesh::l7
