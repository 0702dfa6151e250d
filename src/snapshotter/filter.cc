#include "snapshotter/filter.h"

#include <cctype>

#include "snapshotter/errors.h"

namespace offcore {

namespace {

using Selector = SnapshotFilter::Selector;
using Op = SnapshotFilter::Op;

bool isFieldChar(char c) { return c == '_' || std::isalnum(static_cast<unsigned char>(c)); }

void appendUtf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// One filter string; position-based errors like containerd's.
class Parser {
 public:
  explicit Parser(const std::string& s) : s_(s) {}

  Result<std::vector<Selector>> selectors() {
    std::vector<Selector> out;
    for (;;) {
      OC_ASSIGN_OR_RETURN(auto sel, selector());
      out.push_back(std::move(sel));
      skipSpace();
      if (pos_ >= s_.size()) return out;
      if (s_[pos_] != ',') return err("unexpected input");
      ++pos_;
    }
  }

 private:
  Error err(const std::string& what) const {
    return snap::invalidArgument("filter \"" + s_ + "\": " + what + " at offset " + std::to_string(pos_));
  }
  void skipSpace() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }

  Result<Selector> selector() {
    Selector sel;
    for (;;) {
      OC_ASSIGN_OR_RETURN(auto f, field());
      sel.fieldpath.push_back(std::move(f));
      skipSpace();
      if (pos_ < s_.size() && s_[pos_] == '.') {
        ++pos_;
        continue;
      }
      break;
    }
    if (pos_ >= s_.size() || s_[pos_] == ',') return sel;
    std::string op;
    while (pos_ < s_.size() && (s_[pos_] == '=' || s_[pos_] == '!' || s_[pos_] == '~')) op += s_[pos_++];
    if (op == "==")
      sel.op = Op::kEqual;
    else if (op == "!=")
      sel.op = Op::kNotEqual;
    else if (op == "~=")
      sel.op = Op::kMatches;
    else
      return err(op.empty() ? "expected an operator (==, != or ~=)" : "unsupported operator " + op);
    OC_ASSIGN_OR_RETURN(sel.value, value(sel.op == Op::kMatches));
    if (sel.op == Op::kMatches) {
      auto re = Regex::compile(sel.value);
      if (!re.ok()) return err(re.error().message);
      sel.re = std::make_shared<const Regex>(std::move(*re));
    }
    return sel;
  }

  Result<std::string> field() {
    skipSpace();
    if (pos_ < s_.size() && s_[pos_] == '"') return quoted('"');
    size_t start = pos_;
    while (pos_ < s_.size() && isFieldChar(s_[pos_])) ++pos_;
    if (pos_ == start) return err("expected a field or a quoted string");
    return s_.substr(start, pos_ - start);
  }

  Result<std::string> value(bool alt_quotes) {
    skipSpace();
    if (pos_ >= s_.size()) return err("expected a value");
    char c = s_[pos_];
    if (c == '"' || c == '/' || c == '|') {
      if (c != '"' && !alt_quotes) return err("invalid quote");
      return quoted(c);
    }
    if (c == ',' || c == '.') return err("expected a value");
    size_t start = pos_;
    while (pos_ < s_.size() && s_[pos_] != ',' && !std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
    return s_.substr(start, pos_ - start);
  }

  Result<uint32_t> digits(int base, int n) {
    uint32_t v = 0;
    for (int i = 0; i < n; ++i, ++pos_) {
      if (pos_ >= s_.size()) return err("short escape");
      int d = std::isdigit(static_cast<unsigned char>(s_[pos_]))    ? s_[pos_] - '0'
              : std::isxdigit(static_cast<unsigned char>(s_[pos_])) ? std::tolower(s_[pos_]) - 'a' + 10
                                                                    : 99;
      if (d >= base) return err("illegal numeric escape");
      v = v * static_cast<uint32_t>(base) + static_cast<uint32_t>(d);
    }
    return v;
  }

  // Go string syntax with the given quote.
  Result<std::string> quoted(char q) {
    ++pos_;
    std::string out;
    for (;;) {
      if (pos_ >= s_.size() || s_[pos_] == '\n') return err("quoted literal not terminated");
      char c = s_[pos_++];
      if (c == q) return out;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= s_.size()) return err("quoted literal not terminated");
      char e = s_[pos_++];
      switch (e) {
        case 'a': out += '\a'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'v': out += '\v'; break;
        case '\\': out += '\\'; break;
        case 'x': {
          OC_ASSIGN_OR_RETURN(uint32_t v, digits(16, 2));
          out += static_cast<char>(v);
          break;
        }
        case 'u': {
          OC_ASSIGN_OR_RETURN(uint32_t v, digits(16, 4));
          appendUtf8(out, v);
          break;
        }
        case 'U': {
          OC_ASSIGN_OR_RETURN(uint32_t v, digits(16, 8));
          appendUtf8(out, v);
          break;
        }
        default:
          if (e == q) {
            out += e;
          } else if (e >= '0' && e <= '7') {
            --pos_;
            OC_ASSIGN_OR_RETURN(uint32_t v, digits(8, 3));
            out += static_cast<char>(v);
          } else {
            return err("illegal escape sequence");
          }
      }
    }
  }

  const std::string& s_;
  size_t pos_ = 0;
};

// containerd's adaptSnapshot: (value, present) for a field path.
std::pair<std::string, bool> fieldOf(const SnapshotInfo& info, const std::vector<std::string>& path) {
  const std::string& f = path.front();
  if (f == "kind") {
    if (info.kind == SnapshotKind::kUnknown) return {"", false};
    return {kindName(info.kind), true};
  }
  if (f == "name") return {info.name, true};
  if (f == "parent") return {info.parent, true};
  if (f == "labels") {
    std::string key;
    for (size_t i = 1; i < path.size(); ++i) key += (i > 1 ? "." : "") + path[i];
    auto it = info.labels.find(key);
    if (it == info.labels.end()) return {"", false};
    return {it->second, true};
  }
  return {"", false};
}

}  // namespace

Result<SnapshotFilter> SnapshotFilter::parse(const std::vector<std::string>& filters) {
  SnapshotFilter f;
  for (const auto& s : filters) {
    if (s.empty()) {  // containerd: an empty filter matches everything
      f.any_.emplace_back();
      continue;
    }
    OC_ASSIGN_OR_RETURN(auto sels, Parser(s).selectors());
    f.any_.push_back(std::move(sels));
  }
  return f;
}

bool SnapshotFilter::matches(const SnapshotInfo& info) const {
  if (any_.empty()) return true;
  for (const auto& all : any_) {
    bool ok = true;
    for (const auto& sel : all) {
      auto [v, present] = fieldOf(info, sel.fieldpath);
      switch (sel.op) {
        case Op::kPresent: ok = present; break;
        case Op::kEqual: ok = present && v == sel.value; break;
        case Op::kNotEqual: ok = v != sel.value; break;
        case Op::kMatches: ok = present && sel.re && sel.re->partialMatch(v); break;
      }
      if (!ok) break;
    }
    if (ok) return true;
  }
  return false;
}

}  // namespace offcore
