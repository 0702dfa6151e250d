#include "mesh/http/http1_codec.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace offcore::mesh::http {
namespace {

struct Sink : Http1Parser::Callbacks {
  std::vector<MessageHead> heads;
  std::vector<std::string> bodies;
  int complete = 0;
  int error_status = 0;
  std::string error;
  void onHead(MessageHead&& h) override {
    heads.push_back(std::move(h));
    bodies.emplace_back();
  }
  void onBody(std::string_view b) override { bodies.back().append(b); }
  void onTrailers(Headers&& t) override { trailers.push_back(std::move(t)); }
  void onComplete() override { ++complete; }
  std::vector<Headers> trailers;
  void onError(int status, const std::string& why) override {
    error_status = status;
    error = why;
  }
};

TEST(Http1Codec, RequestHeadAndKeepAlive) {
  Sink s;
  Http1Parser p(Http1Parser::Kind::kRequest, &s);
  p.feed("GET /a/b?x=1 HTTP/1.1\r\nHost: web\r\nX-User: alice\r\n\r\n");
  ASSERT_EQ(s.heads.size(), 1u);
  EXPECT_EQ(s.heads[0].method, "GET");
  EXPECT_EQ(s.heads[0].target, "/a/b?x=1");
  EXPECT_EQ(s.heads[0].path, "/a/b");
  EXPECT_TRUE(s.heads[0].keep_alive);
  EXPECT_FALSE(s.heads[0].hasBody());
  EXPECT_EQ(*findHeader(s.heads[0].headers, "x-user"), "alice");
  EXPECT_EQ(s.complete, 1);
  EXPECT_EQ(s.error_status, 0);
}

TEST(Http1Codec, ChunkedBodyByteByByte) {
  Sink s;
  Http1Parser p(Http1Parser::Kind::kRequest, &s);
  std::string msg =
      "POST /up HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n";
  for (char c : msg) p.feed(std::string_view(&c, 1));
  ASSERT_EQ(s.heads.size(), 1u);
  EXPECT_TRUE(s.heads[0].chunked);
  EXPECT_EQ(s.bodies[0], "hello, world");
  EXPECT_EQ(s.complete, 1);
}

// Chunked trailers come out once, before onComplete, and do not leak into
// the next message's head; a bad trailer field is a bad request.
TEST(Http1Codec, ChunkedTrailersByteByByte) {
  Sink s;
  Http1Parser p(Http1Parser::Kind::kRequest, &s);
  std::string msg =
      "POST /up HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n0\r\nX-Sum: 42\r\nX-Other: a b \r\n\r\n";
  for (char c : msg) p.feed(std::string_view(&c, 1));
  ASSERT_EQ(s.complete, 1);
  EXPECT_EQ(s.bodies[0], "hello");
  ASSERT_EQ(s.trailers.size(), 1u);
  ASSERT_EQ(s.trailers[0].size(), 2u);
  EXPECT_EQ(*findHeader(s.trailers[0], "x-sum"), "42");
  EXPECT_EQ(*findHeader(s.trailers[0], "x-other"), "a b");
  p.resume();
  p.feed("POST /b HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
  ASSERT_EQ(s.complete, 2);
  EXPECT_EQ(s.trailers.size(), 1u);  // none this time
  EXPECT_EQ(s.heads[1].headers.size(), 2u);

  Sink bad;
  Http1Parser q(Http1Parser::Kind::kRequest, &bad);
  q.feed("POST /up HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nBad Name: x\r\n\r\n");
  EXPECT_EQ(bad.error_status, 400);
  EXPECT_EQ(bad.complete, 0);
}

TEST(Http1Codec, PipelinedRequestsWaitForResume) {
  Sink s;
  Http1Parser p(Http1Parser::Kind::kRequest, &s);
  p.feed(
      "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /3 "
      "HTTP/1.1\r\n");
  EXPECT_EQ(s.complete, 1);
  EXPECT_TRUE(p.paused());
  EXPECT_GT(p.buffered(), 0u);
  p.resume();
  EXPECT_EQ(s.complete, 2);
  EXPECT_EQ(s.bodies[1], "abc");
  p.resume();
  EXPECT_EQ(s.heads.size(), 2u);  // the third head is incomplete: waits for bytes
  EXPECT_EQ(s.complete, 2);
  p.feed("Host: a\r\n\r\n");
  EXPECT_EQ(s.heads.size(), 3u);
  EXPECT_EQ(s.heads[2].path, "/3");
  EXPECT_EQ(s.complete, 3);
}

struct Bad {
  const char* name;
  std::string input;
  int status;
};

TEST(Http1Codec, RefusesSmugglingAndBadInput) {
  std::string many;
  for (int i = 0; i < 101; ++i) many += "X-H" + std::to_string(i) + ": v\r\n";
  std::vector<Bad> cases = {
      {"cl+te", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
      {"te+cl", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n", 400},
      {"two cl", "POST / HTTP/1.1\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde", 400},
      {"te not chunked", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
      {"te twice", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"te obfuscated", "POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n", 501},
      {"bad chunk size", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400},
      {"huge chunk size", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\n", 400},
      {"space before colon", "GET / HTTP/1.1\r\nContent-Length : 5\r\n\r\n", 400},
      {"te lookalike", "POST / HTTP/1.1\r\nTransfer-Encoding&: chunked\r\n\r\n", 400},
      {"space in name", "GET / HTTP/1.1\r\nTransfer Encoding: chunked\r\n\r\n", 400},
      {"oversized headers", "GET / HTTP/1.1\r\nX-Big: " + std::string(61 << 10, 'a') + "\r\n\r\n", 431},
      {"too many headers", "GET / HTTP/1.1\r\n" + many + "\r\n", 431},
      {"not http", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400},
      {"absolute form elsewhere", "GET http://evil/ HTTP/1.1\r\n\r\n", 400},
      {"connect", "CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", 501},
  };
  for (const auto& c : cases) {
    for (size_t split : {c.input.size(), size_t{1}, size_t{7}}) {
      Sink s;
      Http1Parser p(Http1Parser::Kind::kRequest, &s);
      for (size_t i = 0; i < c.input.size(); i += split) p.feed(std::string_view(c.input).substr(i, split));
      EXPECT_EQ(s.error_status, c.status) << c.name << " split " << split << ": " << s.error;
      EXPECT_TRUE(p.failed()) << c.name;
      EXPECT_EQ(s.complete, 0) << c.name;
    }
  }
}

TEST(Http1Codec, ResponsesUntilCloseHeadAnd204) {
  Sink s;
  Http1Parser p(Http1Parser::Kind::kResponse, &s);
  p.feed("HTTP/1.1 200 OK\r\nServer: x\r\n\r\npart1");
  p.feed("part2");
  ASSERT_EQ(s.heads.size(), 1u);
  EXPECT_TRUE(s.heads[0].until_close);
  EXPECT_FALSE(s.heads[0].keep_alive);
  EXPECT_EQ(s.complete, 0);
  p.finish();
  EXPECT_EQ(s.complete, 1);
  EXPECT_EQ(s.bodies[0], "part1part2");

  Sink h;
  Http1Parser ph(Http1Parser::Kind::kResponse, &h);
  ph.expectNoBody(true);
  ph.feed("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
  EXPECT_EQ(h.complete, 1);
  EXPECT_FALSE(h.heads[0].hasBody());
  ph.expectNoBody(false);
  ph.resume();
  ph.feed("HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  EXPECT_EQ(h.complete, 2);
  ph.resume();
  EXPECT_EQ(h.complete, 3);
  EXPECT_EQ(h.bodies[2], "ok");

  Sink t;
  Http1Parser pt(Http1Parser::Kind::kResponse, &t);
  pt.feed("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
  pt.finish();
  EXPECT_EQ(t.error_status, 400);  // truncated
}

TEST(Http1Codec, SerializeDropsHopByHopAndReframes) {
  MessageHead h;
  h.method = "POST";
  h.target = "/x?y=1";
  h.headers = {{"Host", "web"},     {"Connection", "keep-alive, X-Secret"}, {"X-Secret", "1"},
               {"Keep-Alive", "5"}, {"Transfer-Encoding", "chunked"},       {"X-Keep", "yes"},
               {"Upgrade", "h2c"}};
  h.chunked = true;
  std::string out = serializeRequestHead(h, {{"x-forwarded-proto", "http"}});
  EXPECT_EQ(out,
            "POST /x?y=1 HTTP/1.1\r\nHost: web\r\nX-Keep: yes\r\nx-forwarded-proto: http\r\n"
            "transfer-encoding: chunked\r\n\r\n");
  EXPECT_EQ(encodeChunk("hello"), "5\r\nhello\r\n");
  EXPECT_EQ(encodeChunk(""), "");

  MessageHead r;
  r.status = 200;
  r.until_close = true;
  EXPECT_EQ(serializeResponseHead(r), "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n");
  EXPECT_EQ(serializeResponseHead(r, {{"connection", "close"}}, true), "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n");
  r.until_close = false;
  r.content_length = 3;
  EXPECT_EQ(serializeResponseHead(r), "HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\n");
}

}  // namespace
}  // namespace offcore::mesh::http
