// One downstream HTTP/2 connection (h2c with prior knowledge) on nghttp2:
// each stream's request goes through the same Exchange as HTTP/1.1
// (routing, policies, retries, stats) to an HTTP/1.1 upstream, and its
// response comes back on the stream. Streams run concurrently (up to 100).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "mesh/l7/http_proxy.h"

struct nghttp2_session;

namespace offcore::mesh::l7 {

// The client connection preface of HTTP/2 ("PRI * HTTP/2.0..."): a sniffer
// that sees these bytes first hands the connection to Http2Session.
inline constexpr std::string_view kHttp2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
// Whether `first` (the first bytes of a connection) can be or is the preface.
bool looksLikeHttp2(std::string_view first);

class Http2Session : public Transport::Callbacks {
 public:
  // Same contract as HttpSession. `already_read` is what a sniffer took off
  // the transport before handing it over.
  Http2Session(HttpProxyContext& ctx, std::unique_ptr<Transport> downstream, SessionInfo info,
               std::function<void(Http2Session*)> on_done, std::string_view already_read = {});
  ~Http2Session() override;

  size_t openStreams() const { return streams_.size(); }

  void onData(std::string_view bytes) override;
  void onEnd() override;
  void onClosed(const Status& why) override;
  void onDrained() override;

 private:
  struct Stream;
  struct Callbacks;
  friend struct Callbacks;
  Stream* stream(int32_t id);
  void requestReady(Stream& s);
  void flush();
  void scheduleFlush();
  void close(bool reset);
  void done();
  // downstream_idle_timeout with no open stream: GOAWAY and close, as the
  // HTTP/1.1 session does between requests.
  void armIdle();

  HttpProxyContext& ctx_;
  std::unique_ptr<Transport> down_;
  SessionInfo info_;
  std::function<void(Http2Session*)> on_done_;
  nghttp2_session* session_ = nullptr;
  std::map<int32_t, std::unique_ptr<Stream>> streams_;
  bool in_recv_ = false;
  bool flush_posted_ = false;
  bool finished_ = false;
  EventLoop::TimerId idle_timer_ = 0;
  std::chrono::steady_clock::time_point last_active_ = std::chrono::steady_clock::now();
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace offcore::mesh::l7
