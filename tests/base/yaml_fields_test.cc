#include "base/yaml_fields.h"

#include <gtest/gtest.h>

namespace offcore::yaml {
namespace {

// One mapping per document: a: string, n: integer, l: labels.
std::vector<std::string> walk(const std::string& text, const std::string& unknown = "unknown field") {
  std::vector<std::string> errors;
  forEachDocument(text, "t.yaml", errors, [&](const YAML::Node& root, Doc& doc) {
    doc.unknown_field = unknown;
    doc.label = "T \"" + peek(root, "a") + "\": ";
    Fields f(doc, root, "", doc.lineOf(root, 1));
    std::string a;
    int64_t n = 0;
    Labels l;
    f.str("a", a, true);
    f.integer("n", n, 1, 10, false);
    f.labels("l", l, false);
    f.checked("c", a, false, [](const std::string& v) { return v == "ok" ? "" : "must be ok"; });
    f.finish();
  });
  return errors;
}

TEST(YamlFieldsTest, ErrorsCarryFileLineLabelAndPath) {
  auto e = walk("a: x\nn: 11\nc: no\nextra: 1\n---\na: y\na: z\n", "not supported by offcore");
  ASSERT_EQ(e.size(), 4u);
  EXPECT_EQ(e[0], "t.yaml:2: T \"x\": n: must be 1-10 (got 11)");
  EXPECT_EQ(e[1], "t.yaml:3: T \"x\": c: must be ok");
  EXPECT_EQ(e[2], "t.yaml:4: T \"x\": extra: not supported by offcore");
  EXPECT_EQ(e[3], "t.yaml:7: T \"y\": a: duplicate field");
}

TEST(YamlFieldsTest, SyntaxErrorsAreCollectedNotThrown) {
  auto e = walk("a: x\n---\na: [1\n---\n,\n");
  ASSERT_EQ(e.size(), 2u);
  EXPECT_NE(e[0].find("t.yaml:"), std::string::npos);
  EXPECT_NE(e[0].find("YAML syntax error"), std::string::npos);
  EXPECT_EQ(e[1].rfind("t.yaml:5: YAML syntax error", 0), 0u) << e[1];
  EXPECT_TRUE(walk("# nothing\n---\n").empty());
  EXPECT_EQ(walk("a: x\nl: {\"bad key!\": v}\n").size(), 1u);
}

}  // namespace
}  // namespace offcore::yaml
