#include "kv/etcd_watch.h"

#include <atomic>
#include <mutex>
#include <thread>

#include "base/log.h"
#include "kv/etcd_json.h"

namespace offcore::kv {

namespace {

class EtcdWatch final : public Watch {
 public:
  EtcdWatch(std::shared_ptr<EtcdTransport> t, std::string key, std::string range_end, int64_t start, WatchCallback fn,
            CURLM* multi)
      : t_(std::move(t)),
        key_(std::move(key)),
        range_end_(std::move(range_end)),
        next_(start),
        fn_(std::move(fn)),
        multi_(multi) {
    thread_ = std::thread([this] { run(); });
  }

  ~EtcdWatch() override {
    stop_ = true;
    curl_multi_wakeup(multi_);
    thread_.join();
    curl_multi_cleanup(multi_);
  }

  EtcdWatch(const EtcdWatch&) = delete;
  EtcdWatch& operator=(const EtcdWatch&) = delete;

 private:
  enum class End { Stopped, Compacted, Broken };

  void run() {
    size_t member = t_->preferred();
    int backoff_ms = 50;
    bool fresh_token = false;
    while (!stop_) {
      End end = stream(member, fresh_token);
      fresh_token = true;  // in case the member refused our token
      if (end != End::Broken) return;
      if (got_data_) backoff_ms = 50;  // it worked for a while: retry soon
      member = (member + 1) % t_->options().endpoints.size();
      curl_multi_poll(multi_, nullptr, 0, backoff_ms, nullptr);  // a sleep the destructor cuts short
      backoff_ms = std::min(backoff_ms * 2, 1000);
    }
  }

  static size_t onData(char* data, size_t size, size_t n, void* user) {
    auto* self = static_cast<EtcdWatch*>(user);
    size_t len = size * n;
    self->buf_.append(data, len);
    self->got_data_ = true;
    size_t start = 0;
    for (size_t nl; (nl = self->buf_.find('\n', start)) != std::string::npos; start = nl + 1) {
      if (!self->onLine(self->buf_.substr(start, nl - start))) return 0;
    }
    self->buf_.erase(0, start);
    if (self->buf_.size() > self->t_->options().max_response_bytes) {
      spdlog::warn("etcd watch: a message over {} MiB; reconnecting", self->t_->options().max_response_bytes >> 20);
      return 0;
    }
    return len;
  }

  // false: end this stream (compacted_ says whether for good).
  bool onLine(const std::string& line) {
    if (line.empty() || stop_) return !stop_;
    auto m = etcdjson::parseWatchMessage(line);
    if (!m.ok()) {
      spdlog::warn("etcd watch: {}; reconnecting", m.error().message);
      return false;
    }
    if (m->canceled || !m->error.empty()) {
      if (m->compact_revision > 0) {
        compacted_ = true;
        WatchBatch b;
        b.revision = m->revision;
        b.compacted = m->compact_revision;
        fn_(b);
        return false;
      }
      spdlog::warn("etcd watch: the member ended the watch ({}); reconnecting",
                   m->error.empty() ? "canceled" : m->error);
      return false;
    }
    if (m->created && next_ == 0) next_ = m->revision + 1;
    if (!m->events.empty()) {
      WatchBatch b;
      b.revision = m->revision;
      b.events = std::move(m->events);
      next_ = b.events.back().kv.mod_revision + 1;
      fn_(b);
    }
    return true;
  }

  End stream(size_t member, bool fresh_token) {
    auto auth = t_->authHeader(fresh_token);
    if (!auth.ok()) {
      spdlog::warn("etcd watch: {}", auth.error().message);
      return End::Broken;
    }
    CURL* h = curl_easy_init();
    if (!h) return End::Broken;
    t_->configure(h);
    std::string url = t_->options().endpoints[member] + "/v3/watch";
    std::string body = etcdjson::watchCreateRequest(key_, range_end_, next_);
    curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
    if (!auth->empty()) headers = curl_slist_append(headers, auth->c_str());
    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &EtcdWatch::onData);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, this);
    buf_.clear();
    got_data_ = false;
    curl_multi_add_handle(multi_, h);
    int running = 1;
    while (!stop_ && running) {
      if (curl_multi_perform(multi_, &running) != CURLM_OK) break;
      if (running) curl_multi_poll(multi_, nullptr, 0, 1000, nullptr);
    }
    curl_multi_remove_handle(multi_, h);
    curl_easy_cleanup(h);
    curl_slist_free_all(headers);
    if (stop_) return End::Stopped;
    if (compacted_) return End::Compacted;
    return End::Broken;
  }

  std::shared_ptr<EtcdTransport> t_;
  std::string key_, range_end_;
  int64_t next_;  // the revision to resume from (0: not yet known)
  WatchCallback fn_;
  CURLM* multi_;
  std::atomic<bool> stop_{false};
  bool compacted_ = false, got_data_ = false;
  std::string buf_;  // a partial line of the stream
  std::thread thread_;
};

}  // namespace

Result<std::unique_ptr<Watch>> startEtcdWatch(std::shared_ptr<EtcdTransport> transport, const std::string& key,
                                              const std::string& range_end, int64_t start_revision, WatchCallback fn) {
  CURLM* multi = curl_multi_init();
  if (!multi) return makeError("etcd watch: curl_multi_init failed", ENOMEM);
  return std::unique_ptr<Watch>(
      std::make_unique<EtcdWatch>(std::move(transport), key, range_end, start_revision, std::move(fn), multi));
}

}  // namespace offcore::kv
