// The API channel end to end: ApiServer on a real unix socket, ApiClient
// (libcurl) on the other side, the server's loop on its own thread.
#include "api/api_server.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <thread>

#include "api/api_client.h"

namespace offcore {
namespace {

class ApiServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    socket_ = "/tmp/offcore-api-test-" + std::to_string(::getpid()) + ".sock";
    ASSERT_TRUE(loop_.init().ok());
    server_ = std::make_unique<ApiServer>(loop_);
    server_->route("GET", "/v1/hello", [](const ApiRequest& r) {
      std::string who = r.query.count("who") ? r.query.at("who") : "";
      return ApiResponse::json(200, "{\"who\":\"" + who + "\"}");
    });
    server_->route("POST", "/v1/echo", [](const ApiRequest& r) { return ApiResponse::json(201, r.body); });
    server_->route("DELETE", "/v1/items/",
                   [](const ApiRequest& r) { return ApiResponse::json(200, "{\"deleted\":\"" + r.tail + "\"}"); });
    ASSERT_TRUE(server_->listenUnix(socket_).ok());
    thread_ = std::thread([this] { (void)loop_.run(); });
  }
  void TearDown() override {
    loop_.stop();
    thread_.join();
    server_.reset();
  }
  std::string socket_;
  EventLoop loop_;
  std::unique_ptr<ApiServer> server_;
  std::thread thread_;
};

TEST_F(ApiServerTest, RoutesMethodsAndBodies) {
  ApiClient client(socket_);
  auto echo = client.post("/v1/echo", "{\"a\":1}");
  ASSERT_TRUE(echo.ok()) << echo.error().message;
  EXPECT_EQ(echo->status, 201);
  EXPECT_EQ(echo->body, "{\"a\":1}");
  auto del = client.del("/v1/items/pf0vf3");
  ASSERT_TRUE(del.ok());
  EXPECT_EQ(del->body, "{\"deleted\":\"pf0vf3\"}");
}

TEST_F(ApiServerTest, DecodesQueryStrings) {
  ApiClient client(socket_);
  auto r = client.call("GET", "/v1/hello?who=pod%201");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r, "{\"who\":\"pod 1\"}");
}

TEST_F(ApiServerTest, UnknownPathIs404AndWrongMethodIs405) {
  ApiClient client(socket_);
  auto missing = client.call("GET", "/v1/nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("no endpoint /v1/nope"), std::string::npos);
  auto wrong = client.get("/v1/echo");
  ASSERT_TRUE(wrong.ok());
  EXPECT_EQ(wrong->status, 405);
}

TEST_F(ApiServerTest, LargeBodiesAreRefused) {
  ApiClient client(socket_);
  auto big = client.post("/v1/echo", std::string(2 << 20, 'x'));
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(big->status, 413);
}

TEST_F(ApiServerTest, ManyRequestsOnOneServer) {
  ApiClient client(socket_);
  for (int i = 0; i < 200; ++i) {
    auto r = client.post("/v1/echo", std::to_string(i));
    ASSERT_TRUE(r.ok());
    ASSERT_EQ(r->body, std::to_string(i));
  }
}

// Found by api_request_fuzz: a path with invalid UTF-8 made the 404 body's
// JSON serialisation throw, which aborted the agent.
TEST(ApiDispatchTest, InvalidUtf8PathIsA404NotACrash) {
  EventLoop loop;
  ApiServer server(loop);
  ApiRequest req{"GET", std::string("/v1/\xe9\xe9", 6), {}, "", ""};
  ApiResponse r = server.dispatch(req);
  EXPECT_EQ(r.status, 404);
}

TEST(ApiClientTest, UnreachableSocketSaysWhere) {
  ApiClient client("/tmp/offcore-no-such.sock", 500);
  auto r = client.get("/v1/health");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("/tmp/offcore-no-such.sock"), std::string::npos);
}

}  // namespace
}  // namespace offcore
