#include "kv/etcd_grpc_watch.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "base/log.h"

namespace offcore::kv {

namespace {

namespace pb = etcdserverpb;

class EtcdGrpcWatch final : public Watch {
 public:
  EtcdGrpcWatch(std::shared_ptr<GrpcMembers> m, std::string key, std::string range_end, int64_t start, WatchCallback fn)
      : m_(std::move(m)), key_(std::move(key)), range_end_(std::move(range_end)), next_(start), fn_(std::move(fn)) {
    thread_ = std::thread([this] { run(); });
  }

  ~EtcdGrpcWatch() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      if (ctx_) ctx_->TryCancel();
    }
    cv_.notify_all();
    thread_.join();
  }

  EtcdGrpcWatch(const EtcdGrpcWatch&) = delete;
  EtcdGrpcWatch& operator=(const EtcdGrpcWatch&) = delete;

 private:
  enum class End { Stopped, Compacted, Broken };

  void run() {
    size_t member = m_->preferred();
    int backoff_ms = 50;
    bool fresh_token = false;
    while (!stopped()) {
      End end = stream(member, fresh_token);
      if (end != End::Broken) return;
      // etcd refuses a stale token on a watch by cancelling it (not with a
      // status), so after any broken stream ask for a new one, as the
      // gateway's watch does.
      fresh_token = true;
      if (delivered_) backoff_ms = 50;  // it worked for a while: retry soon
      member = (member + 1) % m_->size();
      std::unique_lock<std::mutex> lock(mu_);  // a sleep the destructor cuts short
      cv_.wait_for(lock, std::chrono::milliseconds(backoff_ms), [&] { return stop_; });
      backoff_ms = std::min(backoff_ms * 2, 1000);
    }
  }

  bool stopped() {
    std::lock_guard<std::mutex> lock(mu_);
    return stop_;
  }

  End stream(size_t member, bool fresh_token) {
    auto token = m_->token(fresh_token);
    if (!token.ok()) {
      spdlog::warn("etcd watch: {}", token.error().message);
      return End::Broken;
    }
    m_->awaitConnected(member);  // a cut short wait is fine: the stream then fails and we retry
    GrpcMember& m = m_->member(member);
    grpc::ClientContext ctx;
    if (!token->empty()) ctx.AddMetadata("token", *token);
    ctx.AddMetadata("hasleader", "true");  // a member without a leader ends the stream
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return End::Stopped;
      ctx_ = &ctx;
    }
    End end = follow(m, ctx);
    {
      std::lock_guard<std::mutex> lock(mu_);
      ctx_ = nullptr;
      if (stop_) return End::Stopped;
    }
    return end;
  }

  End follow(GrpcMember& m, grpc::ClientContext& ctx) {
    delivered_ = false;
    auto rw = m.watch->Watch(&ctx);
    pb::WatchRequest req;
    pb::WatchCreateRequest* create = req.mutable_create_request();
    create->set_key(key_);
    create->set_range_end(range_end_);
    create->set_start_revision(next_);
    End end = End::Broken;
    if (rw->Write(req)) {
      pb::WatchResponse resp;
      while (rw->Read(&resp)) {
        if (resp.canceled()) {
          if (resp.compact_revision() > 0) {
            WatchBatch b;
            b.revision = resp.header().revision();
            b.compacted = resp.compact_revision();
            fn_(b);
            end = End::Compacted;
          } else {
            spdlog::warn("etcd watch: {} ended the watch ({}); resuming", m.host,
                         resp.cancel_reason().empty() ? "canceled" : resp.cancel_reason());
          }
          ctx.TryCancel();
          break;
        }
        if (resp.created() && next_ == 0) next_ = resp.header().revision() + 1;
        if (resp.events_size() == 0) continue;
        WatchBatch b;
        b.revision = resp.header().revision();
        b.events.reserve(static_cast<size_t>(resp.events_size()));
        for (pb::Event& e : *resp.mutable_events()) {
          WatchEvent ev;
          ev.type = e.type() == pb::Event::DELETE ? WatchEvent::Type::Delete : WatchEvent::Type::Put;
          ev.kv = keyValueFromPb(*e.mutable_kv());
          b.events.push_back(std::move(ev));
        }
        next_ = b.events.back().kv.mod_revision + 1;
        delivered_ = true;
        fn_(b);
      }
    } else {
      ctx.TryCancel();
    }
    last_status_ = rw->Finish();
    if (end == End::Broken && !last_status_.ok() && last_status_.error_code() != grpc::StatusCode::CANCELLED &&
        !stopped()) {
      spdlog::warn("etcd watch: {}; resuming on the next member",
                   GrpcMembers::toError(last_status_, m.host, m_->options().max_response_bytes).message);
    }
    return end;
  }

  std::shared_ptr<GrpcMembers> m_;
  std::string key_, range_end_;
  int64_t next_;  // the revision to resume from (0: not yet known); the watch thread's
  WatchCallback fn_;
  bool delivered_ = false;    // the watch thread's
  grpc::Status last_status_;  // the watch thread's
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;                   // guarded by mu_
  grpc::ClientContext* ctx_ = nullptr;  // guarded by mu_: the stream to cancel
  std::thread thread_;
};

}  // namespace

Result<std::unique_ptr<Watch>> startEtcdGrpcWatch(std::shared_ptr<GrpcMembers> members, const std::string& key,
                                                  const std::string& range_end, int64_t start_revision,
                                                  WatchCallback fn) {
  return std::unique_ptr<Watch>(
      std::make_unique<EtcdGrpcWatch>(std::move(members), key, range_end, start_revision, std::move(fn)));
}

}  // namespace offcore::kv
