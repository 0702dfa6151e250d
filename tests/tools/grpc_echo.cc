// offcore-grpc-echo: a gRPC (h2c) server and client for the mesh tests.
// See README.md for the command line and the JSON the client prints.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "grpc_echo.grpc.pb.h"

namespace {

using offcore::test::Chunk;
using offcore::test::CountRequest;
using offcore::test::EchoReply;
using offcore::test::EchoRequest;
using offcore::test::SumReply;

uint64_t fnv(uint64_t h, const std::string& bytes) {
  for (unsigned char c : bytes) h = (h ^ c) * 1099511628211ull;
  return h;
}
constexpr uint64_t kFnvSeed = 14695981039346656037ull;

// "ipv4:10.0.0.1:5000" / "ipv6:[fd00::1]:5000" -> the address alone.
std::string peerIp(const std::string& peer) {
  std::string p = peer;
  if (auto c = p.find(':'); c != std::string::npos && (p.rfind("ipv4", 0) == 0 || p.rfind("ipv6", 0) == 0))
    p = p.substr(c + 1);
  if (!p.empty() && p[0] == '[') return p.substr(1, p.find(']') - 1);
  if (auto c = p.rfind(':'); c != std::string::npos) p = p.substr(0, c);
  return p;
}

class EchoService final : public offcore::test::Echo::Service {
 public:
  EchoService(std::string name, int fail_every) : name_(std::move(name)), fail_every_(fail_every) {}
  grpc::Status Echo(grpc::ServerContext* ctx, const EchoRequest* req, EchoReply* reply) override {
    if (fail_every_ > 0 && ++calls_ % fail_every_ == 0)
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "every " + std::to_string(fail_every_) + "th call fails");
    reply->set_text(req->text());
    reply->set_server(name_);
    reply->set_peer(peerIp(ctx->peer()));
    return grpc::Status::OK;
  }
  grpc::Status Count(grpc::ServerContext* ctx, const CountRequest* req, grpc::ServerWriter<EchoReply>* w) override {
    for (int i = 0; i < req->n(); ++i) {
      if (i > 0 && req->delay_ms() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(req->delay_ms()));
      if (ctx->IsCancelled()) return grpc::Status::CANCELLED;
      EchoReply r;
      r.set_server(name_);
      r.set_peer(peerIp(ctx->peer()));
      r.set_seq(i);
      if (!w->Write(r)) return grpc::Status::CANCELLED;
    }
    return grpc::Status::OK;
  }
  grpc::Status Sum(grpc::ServerContext*, grpc::ServerReader<Chunk>* r, SumReply* reply) override {
    Chunk c;
    uint64_t h = kFnvSeed;
    int64_t bytes = 0, messages = 0;
    while (r->Read(&c)) {
      h = fnv(h, c.data());
      bytes += static_cast<int64_t>(c.data().size());
      ++messages;
    }
    reply->set_bytes(bytes);
    reply->set_messages(messages);
    reply->set_fnv(h);
    reply->set_server(name_);
    return grpc::Status::OK;
  }
  grpc::Status Chat(grpc::ServerContext* ctx, grpc::ServerReaderWriter<EchoReply, EchoRequest>* rw) override {
    EchoRequest req;
    int seq = 0;
    while (rw->Read(&req)) {
      EchoReply r;
      r.set_text(req.text());
      r.set_server(name_);
      r.set_peer(peerIp(ctx->peer()));
      r.set_seq(seq++);
      if (!rw->Write(r)) return grpc::Status::CANCELLED;
    }
    return grpc::Status::OK;
  }

 private:
  std::string name_;
  int fail_every_;
  std::atomic<int> calls_{0};
};

int usage() {
  std::fprintf(stderr,
               "usage: offcore-grpc-echo serve --port P --name N [--fail-every K]\n"
               "       offcore-grpc-echo call --target IP:PORT [--n N] [--stream K [--delay-ms D]]\n"
               "                              [--upload-mib M] [--chat K]\n"
               "                              [--header k=v]... [--deadline-ms MS] [--expect-code CODE]\n");
  return 2;
}

int serve(int port, const std::string& name, int fail_every) {
  EchoService service(name, fail_every);
  grpc::ServerBuilder b;
  b.AddListeningPort("0.0.0.0:" + std::to_string(port), grpc::InsecureServerCredentials());
  b.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = b.BuildAndStart();
  if (!server) {
    std::fprintf(stderr, "cannot listen on port %d: is it in use?\n", port);
    return 1;
  }
  server->Wait();
  return 0;
}

struct CallOptions {
  std::string target;
  int n = 1;
  int stream = 0;      // > 0: one Count call of this many messages
  int upload_mib = 0;  // > 0: one Sum call sending this many MiB in 64 KiB messages
  int chat = 0;        // > 0: one Chat call, K messages, each sent after the reply to the previous
  int delay_ms = 0;
  int deadline_ms = 5000;
  int expect_code = 0;
  std::vector<std::pair<std::string, std::string>> headers;
};

int call(const CallOptions& o) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_ENABLE_HTTP_PROXY, 0);
  auto channel = grpc::CreateCustomChannel(o.target, grpc::InsecureChannelCredentials(), args);
  auto stub = offcore::test::Echo::NewStub(channel);
  nlohmann::json out;
  std::map<std::string, int> failures, servers;
  int ok = 0, matched = 0, calls = 0;
  std::string server, peer, message;
  auto prepare = [&](grpc::ClientContext& ctx) {
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(o.deadline_ms));
    for (const auto& [k, v] : o.headers) ctx.AddMetadata(k, v);
  };
  auto account = [&](const grpc::Status& st) {
    ++calls;
    if (st.error_code() == o.expect_code) ++matched;
    if (st.ok()) {
      ++ok;
    } else {
      ++failures[std::to_string(st.error_code())];
      message = st.error_message();
    }
  };
  if (o.upload_mib > 0) {
    grpc::ClientContext ctx;
    prepare(ctx);
    SumReply reply;
    auto start = std::chrono::steady_clock::now();
    auto writer = stub->Sum(&ctx, &reply);
    std::string data(64 << 10, '\0');
    uint64_t x = 0x9e3779b97f4a7c15ull, h = kFnvSeed;
    int64_t bytes = 0;
    for (int i = 0; i < o.upload_mib * 16; ++i) {
      for (auto& ch : data) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        ch = static_cast<char>(x);
      }
      h = fnv(h, data);
      bytes += static_cast<int64_t>(data.size());
      Chunk c;
      c.set_data(data);
      if (!writer->Write(c)) break;
    }
    writer->WritesDone();
    grpc::Status st = writer->Finish();
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (st.ok() && (reply.bytes() != bytes || reply.fnv() != h))
      st = grpc::Status(grpc::StatusCode::DATA_LOSS, "the server received " + std::to_string(reply.bytes()) +
                                                         " bytes (hash " + std::to_string(reply.fnv()) + "), sent " +
                                                         std::to_string(bytes) + " (hash " + std::to_string(h) + ")");
    account(st);
    server = reply.server();
    out["bytes"] = reply.bytes();
    out["sent"] = bytes;
    out["ms"] = ms;
    out["mib_s"] = ms > 0 ? static_cast<double>(bytes) / (1 << 20) / (ms / 1000) : 0;
  } else if (o.chat > 0) {
    grpc::ClientContext ctx;
    prepare(ctx);
    auto rw = stub->Chat(&ctx);
    int replies = 0;
    for (int i = 0; i < o.chat; ++i) {
      EchoRequest req;
      req.set_text("ping " + std::to_string(i));
      if (!rw->Write(req)) break;
      // The reply to message i before message i + 1: a proxy that waits for
      // the end of the request deadlocks here (until the deadline).
      EchoReply r;
      if (!rw->Read(&r) || r.text() != req.text() || r.seq() != i) break;
      ++replies;
      server = r.server();
      peer = r.peer();
    }
    rw->WritesDone();
    grpc::Status st = rw->Finish();
    if (st.ok() && replies != o.chat)
      st = grpc::Status(grpc::StatusCode::DATA_LOSS, "got " + std::to_string(replies) + " replies in order");
    account(st);
    out["messages"] = replies;
  } else if (o.stream > 0) {
    grpc::ClientContext ctx;
    prepare(ctx);
    CountRequest req;
    req.set_n(o.stream);
    req.set_delay_ms(o.delay_ms);
    auto start = std::chrono::steady_clock::now();
    auto reader = stub->Count(&ctx, req);
    EchoReply r;
    int messages = 0;
    double first_ms = -1, last_ms = -1;
    while (reader->Read(&r)) {
      double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
      if (messages++ == 0) first_ms = ms;
      last_ms = ms;
      server = r.server();
      peer = r.peer();
    }
    account(reader->Finish());
    out["messages"] = messages;
    out["first_ms"] = first_ms;
    out["last_ms"] = last_ms;
  } else {
    for (int i = 0; i < o.n; ++i) {
      grpc::ClientContext ctx;
      prepare(ctx);
      EchoRequest req;
      req.set_text("hello " + std::to_string(i));
      EchoReply reply;
      grpc::Status st = stub->Echo(&ctx, req, &reply);
      if (st.ok() && reply.text() != req.text()) st = grpc::Status(grpc::StatusCode::DATA_LOSS, "echo mismatch");
      account(st);
      if (st.ok()) {
        server = reply.server();
        peer = reply.peer();
        ++servers[server];
      }
    }
  }
  out["ok"] = ok;
  out["failures"] = failures;
  out["server"] = server;
  out["peer"] = peer;
  out["servers"] = servers;
  out["message"] = message;
  std::printf("%s\n", out.dump().c_str());
  return matched == calls ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage();
  std::string cmd = argv[1];
  CallOptions o;
  int port = 0, fail_every = 0;
  std::string name = "echo";
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) return usage();
    std::string v = argv[++i];
    if (a == "--port")
      port = std::atoi(v.c_str());
    else if (a == "--name")
      name = v;
    else if (a == "--fail-every")
      fail_every = std::atoi(v.c_str());
    else if (a == "--target")
      o.target = v;
    else if (a == "--n")
      o.n = std::atoi(v.c_str());
    else if (a == "--stream")
      o.stream = std::atoi(v.c_str());
    else if (a == "--upload-mib")
      o.upload_mib = std::atoi(v.c_str());
    else if (a == "--chat")
      o.chat = std::atoi(v.c_str());
    else if (a == "--delay-ms")
      o.delay_ms = std::atoi(v.c_str());
    else if (a == "--deadline-ms")
      o.deadline_ms = std::atoi(v.c_str());
    else if (a == "--expect-code")
      o.expect_code = std::atoi(v.c_str());
    else if (a == "--header" && v.find('=') != std::string::npos)
      o.headers.emplace_back(v.substr(0, v.find('=')), v.substr(v.find('=') + 1));
    else
      return usage();
  }
  if (cmd == "serve" && port > 0) return serve(port, name, fail_every);
  if (cmd == "call" && !o.target.empty()) return call(o);
  return usage();
}
