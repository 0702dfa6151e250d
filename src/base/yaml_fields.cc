#include "base/yaml_fields.h"

namespace offcore::yaml {

namespace {

// One document's text. yaml-cpp 0.7's LoadAll() loops forever, allocating,
// on some invalid input (a lone ','; fixed upstream in 0.8.x), so the stream
// is split here and each document goes through Load(). Splitting on marker
// lines is exact: `---` and `...` at column 0 cannot occur inside content.
struct Chunk {
  std::string text;
  int first_line = 0;    // lines before it in the file
  int content_line = 0;  // 1-based line of its first content, 0 = only comments and markers
  bool started = false;  // holds a `---`
  bool ended = false;    // holds a `...`
};

bool isMarker(const std::string& line, const char* marker) {
  if (line.compare(0, 3, marker) != 0) return false;
  return line.size() == 3 || line[3] == ' ' || line[3] == '\t' || line[3] == '\r';
}

std::vector<Chunk> splitDocuments(const std::string& text) {
  std::vector<Chunk> out(1);
  int lineno = 0;
  for (size_t pos = 0; pos < text.size(); ++lineno) {
    size_t nl = text.find('\n', pos);
    size_t end = nl == std::string::npos ? text.size() : nl + 1;
    std::string line = text.substr(pos, end - pos);
    pos = end;
    if (!line.empty() && line.back() == '\n') line.pop_back();
    bool start = isMarker(line, "---"), finish = isMarker(line, "...");
    std::string rest = start ? line.substr(3) : line;
    size_t first = rest.find_first_not_of(" \t\r");
    bool content = !finish && first != std::string::npos && rest[first] != '#' && line[0] != '%';
    // A new document: a `---` after another `---` or after content, or
    // anything after `...`. Comments and directives before a `---` stay
    // with the document it starts.
    const Chunk& cur = out.back();
    if ((start && (cur.started || cur.content_line > 0)) || (cur.ended && (start || content)))
      out.push_back(Chunk{"", lineno});
    Chunk& c = out.back();
    if (c.text.empty()) c.first_line = lineno;
    c.text += line + "\n";
    c.started = c.started || start;
    c.ended = c.ended || finish;
    if (content && c.content_line == 0) c.content_line = lineno + 1;
  }
  return out;
}

}  // namespace

void forEachDocument(const std::string& text, const std::string& file, std::vector<std::string>& errors,
                     const std::function<void(const YAML::Node&, Doc&)>& fn) {
  for (const auto& chunk : splitDocuments(text)) {
    if (errors.size() >= kMaxErrors) break;
    try {
      YAML::Node root = YAML::Load(chunk.text);
      if (root.IsNull()) {
        // yaml-cpp 0.7 returns null for some invalid documents (a lone ',')
        // instead of throwing; only comments and markers may be empty.
        if (chunk.content_line > 0)
          errors.push_back(file + ":" + std::to_string(chunk.content_line) +
                           ": YAML syntax error: cannot parse this document (a stray ',', ']' or '}'?)");
        continue;
      }
      Doc doc{file, &errors, "", chunk.first_line};
      fn(root, doc);
    } catch (const YAML::Exception& e) {
      int line = chunk.first_line + (e.mark.is_null() ? 1 : e.mark.line + 1);
      errors.push_back(file + ":" + std::to_string(line) + ": YAML syntax error: " + e.msg);
    } catch (const std::exception& e) {
      errors.push_back(file + ":" + std::to_string(chunk.first_line + 1) + ": cannot read YAML: " + e.what());
    }
  }
}

YAML::Node peekNode(const YAML::Node& map, const std::string& key) {
  if (!map.IsMap()) return YAML::Node();
  for (auto it = map.begin(); it != map.end(); ++it) {
    if (it->first.IsScalar() && it->first.Scalar() == key) return it->second;
  }
  return YAML::Node();
}

std::string peek(const YAML::Node& map, const std::string& key) {
  YAML::Node v = peekNode(map, key);
  return v.IsScalar() ? v.Scalar() : std::string();
}

std::string joinErrors(const std::vector<std::string>& errors) {
  std::string msg;
  for (const auto& e : errors) msg += (msg.empty() ? "" : "\n") + e;
  return msg;
}

}  // namespace offcore::yaml
