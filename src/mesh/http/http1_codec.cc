#include "mesh/http/http1_codec.h"

#include <http_parser.h>

#include <algorithm>
#include <cctype>
#include <cstdio>

namespace offcore::mesh::http {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return std::tolower(x) == std::tolower(y); });
}

// RFC 9110 token characters (header field names).
bool isToken(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (std::isalnum(c)) continue;
    if (std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) == std::string_view::npos) return false;
  }
  return true;
}

std::string trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return std::string(s);
}

}  // namespace

const std::string* findHeader(const Headers& headers, std::string_view name) {
  for (const auto& [k, v] : headers)
    if (iequals(k, name)) return &v;
  return nullptr;
}

void removeHeader(Headers& headers, std::string_view name) {
  std::erase_if(headers, [&](const auto& kv) { return iequals(kv.first, name); });
}

void setHeader(Headers& headers, std::string_view name, std::string value) {
  removeHeader(headers, name);
  headers.emplace_back(std::string(name), std::move(value));
}

struct Http1Parser::Impl {
  http_parser parser{};
  http_parser_settings settings{};
  Http1Parser* self = nullptr;
  MessageHead head;
  std::string field, value;
  bool in_value = false;
  size_t header_bytes = 0;   // bytes of the current header section so far (trailers included)
  bool in_trailers = false;  // after the head: header fields are a chunked body's trailers
  int error_status = 0;
  std::string error;

  static Impl* of(http_parser* p) { return static_cast<Impl*>(p->data); }
  // Counts header-section bytes as the tokens arrive (the CRLFs and colons
  // are not counted; http-parser's own 80 KiB cap backs this up).
  static int count(http_parser* p, size_t n) {
    Impl* i = of(p);
    i->header_bytes += n;
    if (i->header_bytes > i->self->limits_.max_header_bytes)
      return i->fail(431, "header section larger than " + std::to_string(i->self->limits_.max_header_bytes) + " bytes");
    return 0;
  }

  int fail(int status, std::string why) {
    error_status = status;
    error = std::move(why);
    return -1;
  }
  int commitHeader() {
    if (!in_value) return 0;
    in_value = false;
    if (head.headers.size() >= self->limits_.max_headers)
      return fail(431, "more than " + std::to_string(self->limits_.max_headers) + " headers");
    if (!isToken(field)) return fail(400, "header name '" + field.substr(0, 64) + "' is not a token");
    if (value.find_first_of("\r\n", 0) != std::string::npos || value.find('\0') != std::string::npos)
      return fail(400, "header '" + field + "' has a line break or NUL in its value");
    head.headers.emplace_back(std::move(field), trim(value));
    field.clear();
    value.clear();
    return 0;
  }
  // Framing checks on the complete header section.
  int checkFraming() {
    size_t cl_count = 0, te_count = 0;
    std::string te;
    for (const auto& [k, v] : head.headers) {
      // http-parser flags any name that starts with transfer-encoding.
      if (k.size() > 17 && iequals(std::string_view(k).substr(0, 17), "transfer-encoding"))
        return fail(400, "header '" + k.substr(0, 64) + "' looks like Transfer-Encoding");
      if (iequals(k, "content-length")) ++cl_count;
      if (iequals(k, "transfer-encoding")) {
        ++te_count;
        te += (te.empty() ? "" : ",") + lowerCase(v);
      }
    }
    if (cl_count > 0 && te_count > 0)
      return fail(400, "both Content-Length and Transfer-Encoding (a request smuggling pattern)");
    if (cl_count > 1) return fail(400, "several Content-Length headers");
    if (te_count > 0 && te != "chunked")
      return fail(te_count > 1 ? 400 : 501, "Transfer-Encoding '" + te + "' (only 'chunked' is supported)");
    return 0;
  }

  static int onMessageBegin(http_parser* p) {
    Impl* i = of(p);
    i->head = MessageHead{};
    i->field.clear();
    i->value.clear();
    i->in_value = false;
    i->in_trailers = false;
    i->header_bytes = 0;
    return 0;
  }
  static int onUrl(http_parser* p, const char* at, size_t n) {
    of(p)->head.target.append(at, n);
    return count(p, n);
  }
  static int onStatus(http_parser* p, const char* at, size_t n) {
    of(p)->head.reason.append(at, n);
    return count(p, n);
  }
  static int onHeaderField(http_parser* p, const char* at, size_t n) {
    if (count(p, n) != 0) return -1;
    Impl* i = of(p);
    if (i->in_value && i->commitHeader() != 0) return -1;
    i->field.append(at, n);
    return 0;
  }
  static int onHeaderValue(http_parser* p, const char* at, size_t n) {
    if (count(p, n) != 0) return -1;
    Impl* i = of(p);
    i->in_value = true;
    i->value.append(at, n);
    return 0;
  }
  static int onHeadersComplete(http_parser* p) {
    Impl* i = of(p);
    if (i->commitHeader() != 0) return -1;
    if (i->checkFraming() != 0) return -1;
    MessageHead& h = i->head;
    h.version_minor = p->http_minor;
    h.keep_alive = http_should_keep_alive(p) != 0;
    h.chunked = (p->flags & F_CHUNKED) != 0;
    if (findHeader(h.headers, "content-length")) h.content_length = p->content_length;
    if (i->self->kind_ == Kind::kRequest) {
      if (p->upgrade || p->method == HTTP_CONNECT) return i->fail(501, "CONNECT and Upgrade are not proxied at L7");
      h.method = http_method_str(static_cast<http_method>(p->method));
      h.path = h.target.substr(0, h.target.find_first_of("?#"));
      if (h.path.empty() || (h.path[0] != '/' && h.path != "*"))
        return i->fail(400, "request target '" + h.target.substr(0, 64) + "' is not an origin-form path");
    } else {
      h.status = p->status_code;
      bool bodiless = i->self->no_body_ || h.status / 100 == 1 || h.status == 204 || h.status == 304;
      if (bodiless) {
        h.chunked = false;
        h.content_length.reset();
      } else if (!h.chunked && !h.content_length) {
        h.until_close = true;
        h.keep_alive = false;
      }
    }
    i->self->in_message_ = true;
    i->in_trailers = true;
    i->self->callbacks_->onHead(std::move(h));
    i->head.headers.clear();  // moved from: trailers collect here
    if (i->self->kind_ == Kind::kResponse && (i->self->no_body_ || p->status_code / 100 == 1)) return 1;
    return 0;
  }
  static int onBody(http_parser* p, const char* at, size_t n) {
    of(p)->self->callbacks_->onBody(std::string_view(at, n));
    return 0;
  }
  static int onMessageComplete(http_parser* p) {
    Impl* i = of(p);
    if (i->in_trailers && i->commitHeader() != 0) return -1;
    if (i->in_trailers && !i->head.headers.empty()) i->self->callbacks_->onTrailers(std::move(i->head.headers));
    i->self->in_message_ = false;
    i->self->paused_ = true;
    http_parser_pause(p, 1);
    i->self->callbacks_->onComplete();
    return 0;
  }
};

Http1Parser::Http1Parser(Kind kind, Callbacks* callbacks, Limits limits)
    : kind_(kind), callbacks_(callbacks), limits_(limits), impl_(std::make_unique<Impl>()) {
  impl_->self = this;
  http_parser_init(&impl_->parser, kind == Kind::kRequest ? HTTP_REQUEST : HTTP_RESPONSE);
  impl_->parser.data = impl_.get();
  auto& s = impl_->settings;
  http_parser_settings_init(&s);
  s.on_message_begin = &Impl::onMessageBegin;
  s.on_url = &Impl::onUrl;
  s.on_status = &Impl::onStatus;
  s.on_header_field = &Impl::onHeaderField;
  s.on_header_value = &Impl::onHeaderValue;
  s.on_headers_complete = &Impl::onHeadersComplete;
  s.on_body = &Impl::onBody;
  s.on_message_complete = &Impl::onMessageComplete;
}

Http1Parser::~Http1Parser() = default;

void Http1Parser::feed(std::string_view bytes) {
  if (failed_) return;
  if (pending_off_ > 0 && pending_off_ == pending_.size()) {
    pending_.clear();
    pending_off_ = 0;
  }
  pending_.append(bytes);
  parse();
}

void Http1Parser::resume() {
  if (failed_ || !paused_) return;
  paused_ = false;
  http_parser_pause(&impl_->parser, 0);
  parse();
}

void Http1Parser::parse() {
  if (parsing_) return;  // a callback fed or resumed us: the outer loop continues
  parsing_ = true;
  while (!failed_ && !paused_ && buffered() > 0) {
    const char* data = pending_.data() + pending_off_;
    size_t len = buffered();
    size_t n = http_parser_execute(&impl_->parser, &impl_->settings, data, len);
    pending_off_ += n;
    auto err = HTTP_PARSER_ERRNO(&impl_->parser);
    if (err == HPE_PAUSED) break;
    if (err != HPE_OK || (n < len && !paused_)) {
      failed_ = true;
      int status = impl_->error_status ? impl_->error_status : 400;
      std::string why =
          impl_->error.empty() ? std::string("malformed HTTP/1 message: ") + http_errno_description(err) : impl_->error;
      if (err == HPE_HEADER_OVERFLOW) status = 431;
      callbacks_->onError(status, why);
      break;
    }
  }
  if (pending_off_ == pending_.size()) {
    pending_.clear();
    pending_off_ = 0;
  } else if (pending_off_ > (64 << 10)) {
    pending_.erase(0, pending_off_);
    pending_off_ = 0;
  }
  parsing_ = false;
}

void Http1Parser::finish() {
  if (failed_ || paused_) return;
  bool mid = in_message_ || buffered() > 0;
  http_parser_execute(&impl_->parser, &impl_->settings, nullptr, 0);
  auto err = HTTP_PARSER_ERRNO(&impl_->parser);
  if ((err != HPE_OK && err != HPE_PAUSED) || (mid && in_message_)) {
    failed_ = true;
    callbacks_->onError(400, "the peer closed in the middle of a message");
  }
}

bool isHopByHop(std::string_view name, const Headers& headers) {
  static const char* const kHop[] = {
      "connection", "keep-alive",         "proxy-connection",   "te", "trailer", "transfer-encoding",
      "upgrade",    "proxy-authenticate", "proxy-authorization"};
  for (const char* h : kHop)
    if (iequals(name, h)) return true;
  if (const std::string* conn = findHeader(headers, "connection")) {
    size_t start = 0;
    while (start <= conn->size()) {
      size_t comma = conn->find(',', start);
      std::string tok =
          trim(std::string_view(*conn).substr(start, comma == std::string::npos ? std::string::npos : comma - start));
      if (!tok.empty() && iequals(tok, name)) return true;
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  return false;
}

namespace {

void appendHeaders(std::string& out, const MessageHead& head, const Headers& extra) {
  for (const auto& [k, v] : head.headers) {
    if (isHopByHop(k, head.headers) || iequals(k, "content-length")) continue;
    if (findHeader(extra, k)) continue;  // replaced
    out += k + ": " + v + "\r\n";
  }
  for (const auto& [k, v] : extra) out += k + ": " + v + "\r\n";
}

}  // namespace

std::string serializeRequestHead(const MessageHead& head, const Headers& extra) {
  std::string out = head.method + " " + head.target + " HTTP/1.1\r\n";
  appendHeaders(out, head, extra);
  if (head.chunked)
    out += "transfer-encoding: chunked\r\n";
  else if (head.content_length)
    out += "content-length: " + std::to_string(*head.content_length) + "\r\n";
  out += "\r\n";
  return out;
}

std::string serializeResponseHead(const MessageHead& head, const Headers& extra, bool close_delimited) {
  std::string out = "HTTP/1.1 " + std::to_string(head.status) + " " +
                    (head.reason.empty() ? std::string(reasonPhrase(head.status)) : head.reason) + "\r\n";
  appendHeaders(out, head, extra);
  if ((head.chunked || head.until_close) && close_delimited) {
    // No framing header: the body ends when we close.
  } else if (head.chunked || head.until_close) {
    out += "transfer-encoding: chunked\r\n";
  } else if (head.content_length) {
    out += "content-length: " + std::to_string(*head.content_length) + "\r\n";
  } else if (head.status / 100 != 1 && head.status != 204 && head.status != 304 && !findHeader(extra, "content-length"))
    out += "content-length: 0\r\n";
  out += "\r\n";
  return out;
}

std::string encodeChunk(std::string_view bytes) {
  if (bytes.empty()) return {};
  char size[20];
  int n = std::snprintf(size, sizeof size, "%zx\r\n", bytes.size());
  std::string out(size, static_cast<size_t>(n));
  out.append(bytes);
  out += "\r\n";
  return out;
}

std::string_view lastChunk() { return "0\r\n\r\n"; }

const char* reasonPhrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Status";
  }
}

std::string simpleResponse(int status, std::string_view body, const Headers& extra, bool close) {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + reasonPhrase(status) + "\r\n";
  for (const auto& [k, v] : extra) out += k + ": " + v + "\r\n";
  out += "content-type: text/plain\r\ncontent-length: " + std::to_string(body.size()) + "\r\n";
  if (close) out += "connection: close\r\n";
  out += "\r\n";
  out.append(body);
  return out;
}

std::string lowerCase(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace offcore::mesh::http
