// Walking user-written YAML with error collection, shared by every parser
// of Kubernetes-shaped documents (svc resources, mesh config). Every lookup
// marks its key as known, finish() reports the rest as unknown fields, and
// every error carries file:line, the resource and the field path. Maps are
// walked by hand instead of node[key], which would accept duplicate keys
// silently and could throw on a non-map. yaml-cpp throws; forEachDocument()
// keeps every exception inside.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cctype>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace offcore::yaml {

using Labels = std::map<std::string, std::string>;

inline constexpr size_t kMaxErrors = 50;  // per file; the rest would only be noise

inline std::string describe(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null: return "nothing";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a mapping";
    default: {
      std::string s = n.Scalar().size() > 40 ? n.Scalar().substr(0, 40) + "..." : n.Scalar();
      return "\"" + s + "\"";
    }
  }
}

// Error collection for one document; the resource label fills in once
// metadata has been read.
struct Doc {
  std::string file;
  std::vector<std::string>* errors;
  std::string label;    // `Service "web": `
  int line_offset = 0;  // of the document's text in the file
  // What finish() says about a field nobody asked for.
  std::string unknown_field = "unknown field";

  // The 1-based line of n in the file.
  int lineOf(const YAML::Node& n, int fallback) const {
    YAML::Mark m = n.Mark();
    return m.is_null() ? fallback : m.line + 1 + line_offset;
  }

  void error(int at, const std::string& field, const std::string& msg) {
    if (errors->size() >= kMaxErrors) return;
    errors->push_back(file + ":" + std::to_string(at) + ": " + label + (field.empty() ? "" : field + ": ") + msg);
  }
};

// One YAML mapping: lookups mark keys as known; finish() reports the rest.
class Fields {
 public:
  // line: where the section starts (its key), for missing-field errors.
  Fields(Doc& doc, const YAML::Node& node, std::string path, int line)
      : doc_(doc), path_(std::move(path)), line_(line) {
    if (node.IsNull()) return;  // an empty section: every field is absent
    if (!node.IsMap()) {
      doc_.error(line_, path_, "must be a mapping (got " + describe(node) + ")");
      valid_ = false;
      return;
    }
    for (auto it = node.begin(); it != node.end(); ++it) {
      int kl = doc_.lineOf(it->first, line_);
      if (!it->first.IsScalar()) {
        doc_.error(kl, path_, "keys must be plain strings");
        continue;
      }
      const std::string& k = it->first.Scalar();
      if (!entries_.emplace(k, Entry{it->second, kl}).second) doc_.error(kl, field(k), "duplicate field");
    }
  }

  int line() const { return line_; }
  const std::string& path() const { return path_; }
  // Whether key is present at all (valid or not); marks nothing.
  bool has(const std::string& key) const { return entries_.count(key) != 0; }
  bool valid() const { return valid_; }
  int keyLine(const std::string& key) const {
    auto it = entries_.find(key);
    return it == entries_.end() ? line_ : it->second.key_line;
  }
  std::string field(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }

  // The value of key, or nullptr when absent (a missing required field is reported).
  const YAML::Node* get(const std::string& key, bool required) {
    auto it = entries_.find(key);
    if (it == entries_.end()) {
      if (required) doc_.error(line_, field(key), "required field is missing");
      return nullptr;
    }
    it->second.used = true;
    return &it->second.value;
  }
  int lineOf(const std::string& key) const {
    auto it = entries_.find(key);
    if (it == entries_.end()) return line_;
    // An empty value's mark is where the parser stopped, often the next line.
    return it->second.value.IsNull() ? it->second.key_line : doc_.lineOf(it->second.value, it->second.key_line);
  }

  bool str(const std::string& key, std::string& out, bool required) {
    const YAML::Node* v = get(key, required);
    if (!v) return false;
    if (!v->IsScalar()) {
      doc_.error(lineOf(key), field(key), "must be a string (got " + describe(*v) + ")");
      return false;
    }
    out = v->Scalar();
    return true;
  }

  // A plain (unquoted) decimal integer in [lo, hi].
  bool integer(const std::string& key, int64_t& out, int64_t lo, int64_t hi, bool required) {
    const YAML::Node* v = get(key, required);
    if (!v) return false;
    int at = lineOf(key);
    if (!v->IsScalar() || v->Tag() != "?") {
      doc_.error(at, field(key), "must be an integer (got " + describe(*v) + (v->IsScalar() ? ", quoted" : "") + ")");
      return false;
    }
    const std::string& s = v->Scalar();
    size_t i = (!s.empty() && s[0] == '-') ? 1 : 0;
    bool digits = i < s.size() && s.size() - i <= 12;
    for (size_t k = i; k < s.size() && digits; ++k) digits = s[k] >= '0' && s[k] <= '9';
    if (!digits) {
      doc_.error(at, field(key), "must be an integer (got \"" + s + "\")");
      return false;
    }
    out = std::stoll(s);
    if (out < lo || out > hi) {
      doc_.error(at, field(key), "must be " + std::to_string(lo) + "-" + std::to_string(hi) + " (got " + s + ")");
      return false;
    }
    return true;
  }

  // A string that must be one of `allowed`.
  bool oneOf(const std::string& key, std::string& out, const std::vector<std::string>& allowed, bool required) {
    std::string v;
    if (!str(key, v, required)) return false;
    for (const auto& a : allowed) {
      if (v == a) {
        out = v;
        return true;
      }
    }
    std::string list;
    for (const auto& a : allowed) list += (list.empty() ? "" : "|") + a;
    doc_.error(lineOf(key), field(key), "must be " + list + " (got \"" + v + "\")");
    return false;
  }

  // A string that `problem` accepts: it returns "" for a good value, else
  // the whole error text (e.g. `must be an IPv4 address (got "x")`).
  bool checked(const std::string& key, std::string& out, bool required,
               const std::function<std::string(const std::string&)>& problem) {
    std::string v;
    if (!str(key, v, required)) return false;
    std::string why = problem(v);
    if (!why.empty()) {
      doc_.error(lineOf(key), field(key), why);
      return false;
    }
    out = v;
    return true;
  }

  // Every key with the line it is on, sorted by key.
  std::vector<std::pair<std::string, int>> keys() const {
    std::vector<std::pair<std::string, int>> out;
    for (const auto& [k, e] : entries_) out.emplace_back(k, e.key_line);
    return out;
  }

  void labels(const std::string& key, Labels& out, bool required);

  void finish() {
    for (const auto& [k, e] : entries_) {
      if (!e.used) doc_.error(e.key_line, field(k), doc_.unknown_field);
    }
  }

 private:
  struct Entry {
    YAML::Node value;
    int key_line;
    bool used = false;
  };
  Doc& doc_;
  std::string path_;
  int line_ = 0;
  bool valid_ = true;
  std::map<std::string, Entry> entries_;
};

inline bool labelPart(const std::string& s, size_t max) {
  if (s.empty()) return true;
  if (s.size() > max) return false;
  for (char c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') return false;
  }
  return std::isalnum(static_cast<unsigned char>(s.front())) && std::isalnum(static_cast<unsigned char>(s.back()));
}

inline void Fields::labels(const std::string& key, Labels& out, bool required) {
  const YAML::Node* v = get(key, required);
  if (!v) return;
  Fields m(doc_, *v, field(key), keyLine(key));
  for (const auto& [k, e] : m.entries_) {
    std::string value;
    if (!m.str(k, value, true)) continue;
    auto slash = k.rfind('/');
    std::string prefix = slash == std::string::npos ? "" : k.substr(0, slash);
    std::string base = slash == std::string::npos ? k : k.substr(slash + 1);
    if (base.empty() || !labelPart(base, 63) || !labelPart(prefix, 253) ||
        (slash != std::string::npos && prefix.empty()))
      doc_.error(e.key_line, m.field(k), "not a valid label key (a-z, 0-9, '-', '_', '.', optional prefix/)");
    else if (!labelPart(value, 63))
      doc_.error(m.lineOf(k), m.field(k), "not a valid label value (up to 63 of a-z, 0-9, '-', '_', '.')");
    else
      out[k] = value;
  }
  if (required && out.empty() && m.entries_.empty()) doc_.error(m.line(), field(key), "must not be empty");
}

// Multi-document text, split and loaded one document at a time: fn(root,
// doc) for each non-empty document, with doc's file, errors and line
// offset set. Syntax errors (and any exception of yaml-cpp or fn) become
// `file:line: YAML syntax error: ...` entries in errors. Stops adding
// after kMaxErrors.
void forEachDocument(const std::string& text, const std::string& file, std::vector<std::string>& errors,
                     const std::function<void(const YAML::Node&, Doc&)>& fn);

// The first value of key in a mapping, without marking anything.
YAML::Node peekNode(const YAML::Node& map, const std::string& key);
// The scalar at key, "" when absent or not a scalar.
std::string peek(const YAML::Node& map, const std::string& key);

// Errors, one per line.
std::string joinErrors(const std::vector<std::string>& errors);

}  // namespace offcore::yaml
