// QmpClient against a scripted QMP peer on a unix socket.
#include "virt/qmp/qmp_client.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>

namespace offcore::virt {
namespace {

using nlohmann::json;

// One connection: sends the greeting, then for every line it reads calls
// `answer`, which returns what to write back (possibly several lines).
class FakeQmp {
 public:
  explicit FakeQmp(std::function<std::string(const json&)> answer) : answer_(std::move(answer)) {
    dir_ = std::filesystem::temp_directory_path() / ("qmp-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "qmp.sock").string();
    listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof(addr.sun_path) - 1);
    ::unlink(path_.c_str());
    EXPECT_EQ(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(::listen(listen_fd_, 1), 0);
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeQmp() {
    ::shutdown(listen_fd_, SHUT_RDWR);
    ::close(listen_fd_);
    thread_.join();
    std::filesystem::remove_all(dir_);
  }
  const std::string& path() const { return path_; }

 private:
  void serve() {
    int fd = ::accept(listen_fd_, nullptr, nullptr);
    if (fd < 0) return;
    send(fd, R"({"QMP": {"version": {}, "capabilities": []}})"
             "\r\n");
    std::string buf;
    char chunk[1024];
    while (true) {
      ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
      if (n <= 0) break;
      buf.append(chunk, static_cast<size_t>(n));
      size_t nl;
      while ((nl = buf.find('\n')) != std::string::npos) {
        json req = json::parse(buf.substr(0, nl));
        buf.erase(0, nl + 1);
        std::string out = answer_(req);
        if (out == "CLOSE") {
          ::close(fd);
          return;
        }
        send(fd, out);
      }
    }
    ::close(fd);
  }
  static void send(int fd, const std::string& s) { ASSERT_EQ(::write(fd, s.data(), s.size()), ssize_t(s.size())); }

  std::function<std::string(const json&)> answer_;
  std::filesystem::path dir_;
  std::string path_;
  int listen_fd_ = -1;
  std::thread thread_;
};

std::string reply(const json& req, const json& ret) { return json{{"return", ret}, {"id", req["id"]}}.dump() + "\r\n"; }

TEST(QmpClient, NegotiatesRunsCommandsAndKeepsEventsThatArriveMeanwhile) {
  FakeQmp peer([](const json& req) -> std::string {
    std::string cmd = req["execute"];
    if (cmd == "qmp_capabilities") return reply(req, json::object());
    if (cmd == "query-status") {
      // An event arrives before the reply; the client must keep it.
      return R"({"event": "STOP", "data": {}, "timestamp": {}})"
             "\r\n" +
             reply(req, json{{"status", "running"}, {"running", true}});
    }
    if (cmd == "migrate") {
      return json{{"error", {{"class", "GenericError"}, {"desc", "no such host"}}}, {"id", req["id"]}}.dump() + "\n";
    }
    return reply(req, json::object());
  });
  auto c = QmpClient::connect(peer.path(), std::chrono::seconds(5));
  ASSERT_TRUE(c.ok()) << c.error().message;
  auto st = (*c)->execute("query-status");
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_EQ((*st)["status"], "running");
  auto ev = (*c)->waitEvent("STOP", std::chrono::milliseconds(100));
  EXPECT_TRUE(ev.ok()) << "the event that came before the reply is kept";
  auto err = (*c)->execute("migrate", json{{"uri", "tcp:x:1"}});
  ASSERT_FALSE(err.ok());
  EXPECT_NE(err.error().message.find("GenericError: no such host"), std::string::npos) << err.error().message;
}

TEST(QmpClient, TimesOutAndRejectsGarbage) {
  FakeQmp peer([](const json& req) -> std::string {
    std::string cmd = req["execute"];
    if (cmd == "qmp_capabilities") return reply(req, json::object());
    if (cmd == "hang") return "";
    return "this is not json\n";
  });
  auto c = QmpClient::connect(peer.path(), std::chrono::seconds(5));
  ASSERT_TRUE(c.ok()) << c.error().message;
  auto t = (*c)->execute("hang", nullptr, std::chrono::milliseconds(100));
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().code, ETIMEDOUT);
  auto g = (*c)->execute("garbage");
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.error().message.find("not a JSON object"), std::string::npos);
}

TEST(QmpClient, ConnectFailsClearlyWhenNoVmRuns) {
  auto c = QmpClient::connect("/nonexistent/qmp.sock", std::chrono::milliseconds(50));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message.find("is the VM running"), std::string::npos);
}

}  // namespace
}  // namespace offcore::virt
