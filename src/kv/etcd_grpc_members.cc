#include "kv/etcd_grpc_members.h"

#include <grpc/support/log.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <mutex>

#include "base/files.h"
#include "base/log.h"
#include "kv/etcd_errors.h"

namespace offcore::kv {

namespace {

std::string oneLine(std::string s) {
  for (char& c : s) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return s;
}

// gRPC's own lines (a failed handshake, a reset stream) go to offcore's log
// at debug level: the caller gets the failure as one error line already.
void routeGrpcLog(gpr_log_func_args* args) {
  spdlog::debug("grpc {}:{}: {}", args->file ? args->file : "?", args->line, args->message ? args->message : "");
}

grpc::ChannelArguments channelArgs(const EtcdOptions& o) {
  grpc::ChannelArguments args;
  // A member's answer is bounded like any peer's.
  args.SetMaxReceiveMessageSize(static_cast<int>(std::min<size_t>(o.max_response_bytes, INT_MAX)));
  // One connection per client, as each agent has its own (no process-wide sharing).
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  // A connection attempt lasts connect_timeout_ms; a member that was down is
  // tried again within a second of its return (gRPC's default backs off to 2 min).
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, static_cast<int>(o.connect_timeout_ms));
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  // A name is looked up again at most every second (gRPC's default: 30 s,
  // which holds a channel in failure long after its member is back).
  args.SetInt(GRPC_ARG_DNS_MIN_TIME_BETWEEN_RESOLUTIONS_MS, 1000);
  // A member that vanished without a reset ends a watch's stream within 15 s
  // (etcd allows a ping every 5 s while a stream is open). gRPC 1.51 stops
  // pinging after 2 pings without data unless told otherwise: an idle
  // watch must keep pinging.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  return args;
}

}  // namespace

GrpcMembers::GrpcMembers(EtcdOptions o) : o_(std::move(o)) {
  static std::once_flag quiet;
  std::call_once(quiet, [] { gpr_set_log_function(&routeGrpcLog); });
  if (o_.endpoints.empty()) o_.endpoints.push_back("http://127.0.0.1:2379");
  std::shared_ptr<grpc::ChannelCredentials> tls;
  if (!o_.ca_file.empty()) {
    grpc::SslCredentialsOptions ssl;
    auto read = [&](const std::string& path, std::string& into, const char* what) {
      if (path.empty() || unusable_) return;
      auto text = readFile(path);
      if (!text.ok()) {
        unusable_ = text.error().wrap(std::string("etcd client TLS: the ") + what);
        return;
      }
      into = std::move(*text);
    };
    read(o_.ca_file, ssl.pem_root_certs, "CA file");
    read(o_.cert_file, ssl.pem_cert_chain, "certificate");
    read(o_.key_file, ssl.pem_private_key, "key");
    tls = grpc::SslCredentials(ssl);
  }
  const grpc::ChannelArguments args = channelArgs(o_);
  for (const std::string& e : o_.endpoints) {
    auto m = std::make_unique<GrpcMember>();
    bool https = e.rfind("https://", 0) == 0;
    m->host = e.substr(e.find("://") + 3);
    // An https endpoint without a CA still speaks TLS, checked against the system's CAs.
    auto creds =
        https ? (tls ? tls : grpc::SslCredentials(grpc::SslCredentialsOptions())) : grpc::InsecureChannelCredentials();
    m->channel = grpc::CreateCustomChannel(m->host, creds, args);
    m->kv = etcdserverpb::KV::NewStub(m->channel);
    m->watch = etcdserverpb::Watch::NewStub(m->channel);
    m->lease = etcdserverpb::Lease::NewStub(m->channel);
    m->auth = etcdserverpb::Auth::NewStub(m->channel);
    members_.push_back(std::move(m));
  }
}

std::string GrpcMembers::describe() const {
  std::string out = "etcd://";
  for (size_t i = 0; i < members_.size(); ++i) out += (i ? "," : "") + members_[i]->host;
  return out;
}

KeyValue keyValueFromPb(etcdserverpb::KeyValue& k) {
  KeyValue out;
  out.key = std::move(*k.mutable_key());
  out.value = std::move(*k.mutable_value());
  out.create_revision = k.create_revision();
  out.mod_revision = k.mod_revision();
  out.version = k.version();
  out.lease = k.lease();
  return out;
}

void GrpcMembers::awaitConnected(size_t i) {
  GrpcMember& m = *members_[i];
  if (m.channel->GetState(/*try_to_connect=*/true) == GRPC_CHANNEL_READY) return;
  (void)m.channel->WaitForConnected(std::chrono::system_clock::now() +
                                    std::chrono::milliseconds(o_.connect_timeout_ms));
}

Error GrpcMembers::toError(const grpc::Status& st, const std::string& where, size_t max_bytes) {
  std::string msg = oneLine(st.error_message());
  const int code = st.error_code();
  // gRPC's own words for an answer over our bound (capital R: the member's
  // refusal of a request over its limit says "received").
  if (code == grpc::StatusCode::RESOURCE_EXHAUSTED && msg.find("Received message larger than max") != std::string::npos)
    return makeError(where + ": answer over " + std::to_string(max_bytes >> 20) + " MiB", EMSGSIZE);
  if (code == grpc::StatusCode::RESOURCE_EXHAUSTED && msg.find("larger than max") != std::string::npos)
    return makeError("etcd " + where + ": " + msg + " (a request over the member's --max-request-bytes)", E2BIG);
  if (msg.find("CERTIFICATE_VERIFY_FAILED") != std::string::npos || msg.find("Ssl handshake") != std::string::npos ||
      msg.find("certificate verify failed") != std::string::npos)
    msg += " (TLS: the member's certificate is not signed by etcd_ca_file, or it refused ours)";
  if (etcdMemberUnavailable(code) || code == grpc::StatusCode::UNKNOWN) return makeError(where + ": " + msg, EAGAIN);
  return makeError("etcd " + where + ": " + msg, errnoOfEtcdCode(code));
}

Status GrpcMembers::attempt(const Rpc& rpc, const std::string& token) {
  std::string failures;
  const size_t first = preferred();
  for (size_t k = 0; k < members_.size(); ++k) {
    const size_t i = (first + k) % members_.size();
    GrpcMember& m = *members_[i];
    // Not connected (first use, or a member that was down and may be back):
    // wait for it rather than fail at once on a channel still backing off.
    // The call then says why if it is still down.
    awaitConnected(i);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(o_.request_timeout_ms));
    if (!token.empty()) ctx.AddMetadata("token", token);
    grpc::Status st = rpc(m, ctx);
    if (st.ok()) {
      preferred_.store(i);
      return okStatus();
    }
    Error e = toError(st, m.host, o_.max_response_bytes);
    if (e.code != EAGAIN && e.code != EMSGSIZE) return e;  // a definite answer
    failures += (failures.empty() ? "" : "; ") + e.message;
  }
  return makeError("etcd: no member of " + describe() + " answered (" + failures + "); is a quorum of the cluster up?",
                   EHOSTUNREACH);
}

Result<std::string> GrpcMembers::token(bool fresh) {
  if (o_.user.empty()) return std::string();
  std::lock_guard<std::mutex> lock(auth_mu_);
  if (fresh || token_.empty()) {
    etcdserverpb::AuthenticateRequest req;
    req.set_name(o_.user);
    req.set_password(o_.password);
    etcdserverpb::AuthenticateResponse resp;
    Status s =
        attempt([&](GrpcMember& m, grpc::ClientContext& ctx) { return m.auth->Authenticate(&ctx, req, &resp); }, "");
    if (!s.ok()) return s.error().wrap("authenticating to etcd as user '" + o_.user + "'");
    if (resp.token().empty())
      return makeError("etcd: authenticating as user '" + o_.user + "': no token (is auth enabled on the cluster?)");
    token_ = resp.token();
  }
  return token_;
}

Status GrpcMembers::call(const Rpc& rpc) {
  if (unusable_) return *unusable_;
  OC_ASSIGN_OR_RETURN(std::string tok, token(false));
  Status s = attempt(rpc, tok);
  if (!s.ok() && !o_.user.empty() && etcdStaleToken(s.error())) {
    OC_ASSIGN_OR_RETURN(tok, token(true));  // once more with a new token
    s = attempt(rpc, tok);
  }
  if (!s.ok() && s.error().code == EACCES) return etcdDenied(s.error(), o_.user);
  return s;
}

}  // namespace offcore::kv
