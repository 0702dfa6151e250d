#include "kv/etcd_client.h"

#include <curl/curl.h>

#include <atomic>
#include <mutex>

#include "base/strings.h"
#include "kv/etcd_grpc_client.h"
#include "kv/etcd_json.h"
#include "kv/etcd_transport.h"
#include "kv/etcd_watch.h"

namespace offcore::kv {

namespace {

class EtcdClient final : public KvClient {
 public:
  explicit EtcdClient(EtcdOptions o) : transport_(std::make_shared<EtcdTransport>(std::move(o))) {}

  Result<RangeResult> range(const std::string& key, const std::string& range_end, int64_t revision) override {
    OC_ASSIGN_OR_RETURN(std::string body,
                        transport_->call("/v3/kv/range", etcdjson::rangeRequest(key, range_end, revision)));
    return etcdjson::parseRange(body);
  }

  Result<TxnResult> txn(const std::vector<Compare>& compares, const std::vector<Op>& success,
                        const std::vector<Op>& failure) override {
    OC_ASSIGN_OR_RETURN(std::string body,
                        transport_->call("/v3/kv/txn", etcdjson::txnRequest(compares, success, failure)));
    return etcdjson::parseTxn(body);
  }

  Result<int64_t> leaseGrant(int64_t ttl_s) override {
    OC_ASSIGN_OR_RETURN(std::string body,
                        transport_->call("/v3/lease/grant", "{\"TTL\":\"" + std::to_string(ttl_s) + "\"}"));
    return etcdjson::parseLeaseGrant(body);
  }

  Result<int64_t> leaseKeepAlive(int64_t id) override {
    OC_ASSIGN_OR_RETURN(std::string body,
                        transport_->call("/v3/lease/keepalive", "{\"ID\":\"" + std::to_string(id) + "\"}"));
    return etcdjson::parseLeaseKeepAlive(body);
  }

  Status leaseRevoke(int64_t id) override {
    auto body = transport_->call("/v3/lease/revoke", "{\"ID\":\"" + std::to_string(id) + "\"}");
    if (!body.ok() && body.error().code != ENOENT) return body.error();
    return okStatus();
  }

  Result<std::unique_ptr<Watch>> watch(const std::string& key, const std::string& range_end, int64_t start_revision,
                                       WatchCallback fn) override {
    return startEtcdWatch(transport_, key, range_end, start_revision, std::move(fn));
  }

  Status compact(int64_t revision) override {
    auto body = transport_->call("/v3/kv/compaction", "{\"revision\":\"" + std::to_string(revision) + "\"}");
    if (!body.ok()) return body.error();
    return okStatus();
  }

  std::string describe() const override { return transport_->describe(); }

 private:
  std::shared_ptr<EtcdTransport> transport_;
};

}  // namespace

bool isEtcdUrl(const std::string& location) { return location.rfind("etcd://", 0) == 0; }

Result<EtcdOptions> parseEtcdUrl(const std::string& url, bool tls) {
  auto bad = [&](const std::string& why) {
    return makeError("cluster store '" + url + "': " + why + " (expected etcd://host:port[,host:port...])");
  };
  if (!isEtcdUrl(url)) return bad("not an etcd:// address");
  std::string rest = url.substr(7);
  if (rest.empty()) return bad("no member named");
  if (rest.find(",,") != std::string::npos || rest.front() == ',' || rest.back() == ',') return bad("an empty member");
  EtcdOptions o;
  for (const std::string& member : splitFields(rest, ',')) {
    size_t colon = member.rfind(':');
    if (member.empty() || colon == std::string::npos || colon == 0 || colon + 1 == member.size())
      return bad("member '" + member + "' has no host:port");
    std::string host = member.substr(0, colon), port = member.substr(colon + 1);
    for (char c : port) {
      if (c < '0' || c > '9') return bad("member '" + member + "': the port is not a number");
    }
    int p = std::stoi(port.size() > 5 ? "0" : port);
    if (p <= 0 || p > 65535) return bad("member '" + member + "': port out of range");
    for (char c : host) {
      bool okc = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-';
      if (!okc) return bad("member '" + member + "': bad host name");
    }
    o.endpoints.push_back(std::string(tls ? "https://" : "http://") + host + ":" + port);
  }
  if (o.endpoints.empty()) return bad("no member named");
  return o;
}

Result<EtcdOptions::Wire> parseEtcdWire(const std::string& name) {
  if (name == "grpc" || name.empty()) return EtcdOptions::Wire::Grpc;
  if (name == "gateway") return EtcdOptions::Wire::Gateway;
  return makeError("etcd wire '" + name +
                   "': expected grpc (etcd's gRPC API, the default) or gateway (its HTTP/JSON gateway)");
}

std::unique_ptr<KvClient> makeEtcdClient(EtcdOptions options) {
  if (options.wire == EtcdOptions::Wire::Grpc) return makeEtcdGrpcClient(std::move(options));
  return std::make_unique<EtcdClient>(std::move(options));
}

std::string prefixEnd(const std::string& prefix) {
  std::string end = prefix;
  while (!end.empty()) {
    auto last = static_cast<unsigned char>(end.back());
    if (last < 0xff) {
      end.back() = static_cast<char>(last + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // every key: etcd's "from key to the end"
}

}  // namespace offcore::kv
