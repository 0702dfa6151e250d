#include "kv/etcd_json.h"

#include <cerrno>
#include <charconv>

#include "base/base64.h"
#include "base/json.h"

namespace offcore::kv::etcdjson {

using nlohmann::json;

namespace {

// A member's int64 comes as a string (proto3 JSON) or, from some gateways, a number.
Result<int64_t> num(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return int64_t{0};
  if (it->is_number_integer()) return it->get<int64_t>();
  if (it->is_string()) {
    const std::string& s = it->get_ref<const std::string&>();
    int64_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec == std::errc() && end == s.data() + s.size()) return v;
  }
  return makeError(std::string("etcd answer: ") + key + " is not an integer");
}

Result<std::string> bytes(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::string();
  if (!it->is_string()) return makeError(std::string("etcd answer: ") + key + " is not a string");
  auto raw = base64Decode(it->get_ref<const std::string&>());
  if (!raw.ok()) return makeError(std::string("etcd answer: ") + key + " is not base64");
  return *raw;
}

Result<json> parseObject(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return makeError("etcd answer is not a JSON object");
  return j;
}

int64_t headerRevision(const json& j) {
  auto h = j.find("header");
  if (h == j.end() || !h->is_object()) return 0;
  auto r = num(*h, "revision");
  return r.ok() ? *r : 0;
}

Result<KeyValue> parseKv(const json& j) {
  if (!j.is_object()) return makeError("etcd answer: a key-value is not an object");
  KeyValue kv;
  OC_ASSIGN_OR_RETURN(kv.key, bytes(j, "key"));
  OC_ASSIGN_OR_RETURN(kv.value, bytes(j, "value"));
  OC_ASSIGN_OR_RETURN(kv.create_revision, num(j, "create_revision"));
  OC_ASSIGN_OR_RETURN(kv.mod_revision, num(j, "mod_revision"));
  OC_ASSIGN_OR_RETURN(kv.version, num(j, "version"));
  OC_ASSIGN_OR_RETURN(kv.lease, num(j, "lease"));
  return kv;
}

const char* targetName(Compare::Target t) {
  switch (t) {
    case Compare::Target::Version: return "VERSION";
    case Compare::Target::Create: return "CREATE";
    case Compare::Target::Mod: return "MOD";
    case Compare::Target::Value: return "VALUE";
  }
  return "MOD";
}

const char* resultName(Compare::Result r) {
  switch (r) {
    case Compare::Result::Equal: return "EQUAL";
    case Compare::Result::NotEqual: return "NOT_EQUAL";
    case Compare::Result::Greater: return "GREATER";
    case Compare::Result::Less: return "LESS";
  }
  return "EQUAL";
}

json opJson(const Op& op) {
  if (op.kind == Op::Kind::Put) {
    json p = {{"key", base64Encode(op.key)}, {"value", base64Encode(op.value)}};
    if (op.lease != 0) p["lease"] = std::to_string(op.lease);
    return {{"request_put", std::move(p)}};
  }
  json d = {{"key", base64Encode(op.key)}};
  if (!op.range_end.empty()) d["range_end"] = base64Encode(op.range_end);
  return {{"request_delete_range", std::move(d)}};
}

}  // namespace

std::string rangeRequest(const std::string& key, const std::string& range_end, int64_t revision) {
  json j = {{"key", base64Encode(key)}};
  if (!range_end.empty()) j["range_end"] = base64Encode(range_end);
  if (revision > 0) j["revision"] = std::to_string(revision);
  return dumpJson(j);
}

std::string txnRequest(const std::vector<Compare>& compares, const std::vector<Op>& success,
                       const std::vector<Op>& failure) {
  json cs = json::array();
  for (const Compare& c : compares) {
    json e = {{"key", base64Encode(c.key)}, {"target", targetName(c.target)}, {"result", resultName(c.result)}};
    switch (c.target) {
      case Compare::Target::Version: e["version"] = std::to_string(c.number); break;
      case Compare::Target::Create: e["create_revision"] = std::to_string(c.number); break;
      case Compare::Target::Mod: e["mod_revision"] = std::to_string(c.number); break;
      case Compare::Target::Value: e["value"] = base64Encode(c.value); break;
    }
    cs.push_back(std::move(e));
  }
  json ok = json::array(), fail = json::array();
  for (const Op& op : success) ok.push_back(opJson(op));
  for (const Op& op : failure) fail.push_back(opJson(op));
  return dumpJson(json{{"compare", std::move(cs)}, {"success", std::move(ok)}, {"failure", std::move(fail)}});
}

std::string watchCreateRequest(const std::string& key, const std::string& range_end, int64_t start_revision) {
  json c = {{"key", base64Encode(key)}};
  if (!range_end.empty()) c["range_end"] = base64Encode(range_end);
  if (start_revision > 0) c["start_revision"] = std::to_string(start_revision);
  return dumpJson(json{{"create_request", std::move(c)}});
}

Result<RangeResult> parseRange(const std::string& body) {
  OC_ASSIGN_OR_RETURN(json j, parseObject(body));
  RangeResult out;
  out.revision = headerRevision(j);
  auto kvs = j.find("kvs");
  if (kvs != j.end() && !kvs->is_null()) {
    if (!kvs->is_array()) return makeError("etcd answer: kvs is not an array");
    out.kvs.reserve(kvs->size());
    for (const json& e : *kvs) {
      OC_ASSIGN_OR_RETURN(KeyValue kv, parseKv(e));
      out.kvs.push_back(std::move(kv));
    }
  }
  return out;
}

Result<TxnResult> parseTxn(const std::string& body) {
  OC_ASSIGN_OR_RETURN(json j, parseObject(body));
  TxnResult out;
  out.revision = headerRevision(j);
  auto s = j.find("succeeded");
  if (s != j.end() && !s->is_null()) {
    if (!s->is_boolean()) return makeError("etcd answer: succeeded is not a boolean");
    out.succeeded = s->get<bool>();
  }
  return out;
}

Result<int64_t> parseLeaseGrant(const std::string& body) {
  OC_ASSIGN_OR_RETURN(json j, parseObject(body));
  if (auto e = j.find("error"); e != j.end() && e->is_string() && !e->get_ref<const std::string&>().empty())
    return makeError("etcd: lease grant: " + e->get<std::string>());
  OC_ASSIGN_OR_RETURN(int64_t id, num(j, "ID"));
  if (id == 0) return makeError("etcd answer: lease grant without an ID");
  return id;
}

Result<int64_t> parseLeaseKeepAlive(const std::string& body) {
  OC_ASSIGN_OR_RETURN(json j, parseObject(body));
  auto r = j.find("result");
  if (r == j.end() || !r->is_object()) {
    GatewayError e = parseError(body);
    return makeError("etcd: lease keep-alive: " + e.message, e.grpc_code == 5 ? ENOENT : 0);
  }
  OC_ASSIGN_OR_RETURN(int64_t ttl, num(*r, "TTL"));
  if (ttl <= 0) return makeError("etcd: the lease expired", ENOENT);
  return ttl;
}

std::string quote(const std::string& s) { return json(s).dump(-1, ' ', false, json::error_handler_t::replace); }

Result<std::string> parseAuthenticate(const std::string& body) {
  OC_ASSIGN_OR_RETURN(json j, parseObject(body));
  auto t = j.find("token");
  if (t == j.end() || !t->is_string() || t->get_ref<const std::string&>().empty())
    return makeError("etcd answer: authenticate without a token");
  const std::string& token = t->get_ref<const std::string&>();
  // It goes into a header: one line of printable characters.
  for (char c : token) {
    if (c < 0x21 || c > 0x7e) return makeError("etcd answer: a token with a character a header cannot carry");
  }
  return token;
}

int64_t parseHeaderRevision(const std::string& body) {
  auto j = parseObject(body);
  return j.ok() ? headerRevision(*j) : 0;
}

Result<WatchMessage> parseWatchMessage(const std::string& line) {
  OC_ASSIGN_OR_RETURN(json j, parseObject(line));
  WatchMessage m;
  auto r = j.find("result");
  if (r == j.end() || !r->is_object()) {
    m.error = parseError(line).message;
    return m;
  }
  m.revision = headerRevision(*r);
  auto flag = [&](const char* key) {
    auto it = r->find(key);
    return it != r->end() && it->is_boolean() && it->get<bool>();
  };
  m.created = flag("created");
  m.canceled = flag("canceled");
  OC_ASSIGN_OR_RETURN(m.compact_revision, num(*r, "compact_revision"));
  if (auto reason = r->find("cancel_reason"); reason != r->end() && reason->is_string())
    m.error = reason->get<std::string>();
  auto evs = r->find("events");
  if (evs != r->end() && !evs->is_null()) {
    if (!evs->is_array()) return makeError("etcd answer: events is not an array");
    for (const json& e : *evs) {
      if (!e.is_object()) return makeError("etcd answer: an event is not an object");
      WatchEvent ev;
      auto type = e.find("type");
      if (type != e.end() && type->is_string()) {
        if (type->get_ref<const std::string&>() == "DELETE") {
          ev.type = WatchEvent::Type::Delete;
        } else if (type->get_ref<const std::string&>() != "PUT") {
          return makeError("etcd answer: unknown event type");
        }
      }
      auto kv = e.find("kv");
      if (kv == e.end()) return makeError("etcd answer: an event without kv");
      OC_ASSIGN_OR_RETURN(ev.kv, parseKv(*kv));
      m.events.push_back(std::move(ev));
    }
  }
  return m;
}

GatewayError parseError(const std::string& body) {
  GatewayError e;
  json j = json::parse(body, nullptr, false);
  if (j.is_object()) {
    // A stream's error is an object: {"error":{"grpc_code","message",...}}.
    if (auto nested = j.find("error"); nested != j.end() && nested->is_object()) j = *nested;
    for (const char* key : {"code", "grpc_code"}) {
      if (auto c = j.find(key); c != j.end() && c->is_number_integer()) e.grpc_code = c->get<int>();
    }
    for (const char* key : {"message", "error"}) {
      auto m = j.find(key);
      if (m != j.end() && m->is_string() && !m->get_ref<const std::string&>().empty()) {
        e.message = m->get<std::string>();
        break;
      }
    }
  }
  if (e.message.empty()) e.message = body.size() > 200 ? body.substr(0, 200) + "..." : body;
  // One line, whatever the member sent.
  for (char& ch : e.message) {
    if (ch == '\n' || ch == '\r') ch = ' ';
  }
  return e;
}

}  // namespace offcore::kv::etcdjson
