// config/schema: the declaration is consistent, its defaults are settings.hpp's defaults, and
// docs/config.md is what the declaration generates.
#include "config/schema.hpp"

#include <doctest/doctest.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include "config/fields.hpp"
#include "config/loader.hpp"

namespace {

using tc::config::setting_decl;
using tc::config::settings;
using tc::config::value_type;

bool is_scalar(const setting_decl& d) {
  return d.type != value_type::table_array;
}

/// Flattened values keyed by path ("providers[0].models[0].name").
std::map<std::string, std::string> by_path(const settings& s) {
  std::map<std::string, std::string> out;
  for (const auto& v : tc::config::detail::flatten(s)) out[v.path] = v.toml_text;
  return out;
}

/// One of everything, default-constructed: what settings.hpp says the defaults are.
settings default_tree() {
  settings s;
  tc::config::provider_settings p;
  p.models.emplace_back();
  p.sim.outages.emplace_back();
  s.providers.push_back(p);
  s.moderation.engines.emplace_back();
  return s;
}

}  // namespace

TEST_CASE("every declaration has a unique name, help, and sane bounds") {
  std::set<std::string_view> names;
  for (const setting_decl& d : tc::config::schema()) {
    INFO(d.name);
    CHECK(names.insert(d.name).second);
    CHECK(!d.help.empty());
    if (d.type == value_type::integer || d.type == value_type::floating) {
      CHECK(d.min <= d.max);  // every number is bounded
    }
    if (!d.choices.empty()) CHECK(d.type == value_type::string);
  }
  CHECK(names.size() > 50);
}

TEST_CASE("each declared default parses as its type and lies within its bounds and choices") {
  for (const setting_decl& d : tc::config::schema()) {
    if (d.default_text.empty()) continue;
    INFO(d.name << " = " << d.default_text);
    toml::table t = toml::parse("x = " + std::string(d.default_text));
    const toml::node* x = t.get("x");
    REQUIRE(x != nullptr);
    switch (d.type) {
      case value_type::boolean:
        CHECK(x->is_boolean());
        break;
      case value_type::integer:
        REQUIRE(x->is_integer());
        CHECK(double(*x->value<int64_t>()) >= d.min);
        CHECK(double(*x->value<int64_t>()) <= d.max);
        break;
      case value_type::floating:
        REQUIRE(x->is_floating_point());  // written as a float: "50.0", not "50"
        CHECK(*x->value<double>() >= d.min);
        CHECK(*x->value<double>() <= d.max);
        break;
      case value_type::string:
        REQUIRE(x->is_string());
        if (!d.choices.empty()) {
          CHECK(std::find(d.choices.begin(), d.choices.end(), *x->value<std::string>()) !=
                d.choices.end());
        }
        break;
      case value_type::string_array:
        CHECK(x->is_array());
        break;
      case value_type::table_array:
        FAIL("a table array has no default");
        break;
    }
  }
}

TEST_CASE("the declared defaults are the defaults of settings.hpp") {
  std::map<std::string, std::string> values = by_path(default_tree());
  std::set<std::string_view> seen;
  for (const auto& v : tc::config::detail::flatten(default_tree())) {
    seen.insert(v.decl->name);
    INFO(v.path);
    if (v.decl->default_text.empty()) {
      // No default (required keys): the struct holds the empty value of its type.
      CHECK((v.toml_text == "\"\"" || v.toml_text == "0" || v.toml_text == "0.0" ||
             v.toml_text == "[]" || v.toml_text == "false"));
    } else {
      CHECK(v.toml_text == v.decl->default_text);
    }
  }
  // Every declared scalar is bound to a field, so none escapes the comparison.
  for (const setting_decl& d : tc::config::schema()) {
    INFO(d.name);
    CHECK(seen.count(d.name) == static_cast<size_t>(is_scalar(d)));
  }
}

TEST_CASE("loading a minimal file leaves every undeclared-in-file setting at its default") {
  settings loaded = tc::config::load_string(
      "[[providers]]\nname = \"sim\"\ntype = \"sim\"\n[[providers.models]]\nname = \"m\"\n"
      "[providers.sim]\n[[providers.sim.outages]]\nend_s = 1\n"
      "[[moderation.engines]]\nname = \"p\"\ntype = \"pii\"\n");
  settings expected = default_tree();
  expected.moderation.engines[0].name = "p";
  expected.moderation.engines[0].type = "pii";
  auto& p = expected.providers[0];
  p.name = "sim";
  p.type = "sim";
  p.models[0].name = "m";
  p.models[0].upstream_name = "m";
  p.sim.outages[0].end_s = 1;
  std::map<std::string, std::string> got = by_path(loaded);
  std::map<std::string, std::string> want = by_path(expected);
  CHECK(got.size() == want.size());
  for (const auto& [path, text] : want) {
    INFO(path);
    CHECK(got[path] == text);
  }
}

TEST_CASE("setting every key to its declared default changes nothing") {
  // Build a file that spells out every default, then compare with the minimal load.
  std::map<std::string, std::vector<std::string>> tables;
  for (const setting_decl& d : tc::config::schema()) {
    if (d.default_text.empty()) continue;
    std::string table = tc::config::detail::table_of(d.name);
    tables[table].push_back(std::string(tc::config::detail::leaf_of(d.name)) + " = " +
                            std::string(d.default_text));
  }
  std::string text;
  for (const auto& line : tables[""]) text += line + "\n";
  for (const char* t : {"[server]", "[actors]", "[log]", "[moderation]", "[audit]"}) {
    text += std::string(t) + "\n";
    for (const auto& line : tables[t]) text += line + "\n";
  }
  text += "[[providers]]\nname = \"sim\"\n";
  for (const auto& line : tables["[[providers]]"]) {
    text += line.rfind("type = ", 0) == 0 || line.rfind("base_url = ", 0) == 0 ? "" : line + "\n";
  }
  text += "type = \"sim\"\n[[providers.models]]\nname = \"m\"\n";
  for (const auto& line : tables["[[providers.models]]"]) text += line + "\n";
  text += "[providers.sim]\n";
  for (const auto& line : tables["[providers.sim]"]) text += line + "\n";
  text += "[[providers.sim.outages]]\nend_s = 1\n";
  for (const auto& line : tables["[[providers.sim.outages]]"]) text += line + "\n";
  text += "[[moderation.engines]]\nname = \"p\"\ntype = \"pii\"\n";
  for (const auto& line : tables["[[moderation.engines]]"]) text += line + "\n";
  INFO(text);

  settings spelled = tc::config::load_string(text);
  settings minimal = tc::config::load_string(
      "[[providers]]\nname = \"sim\"\ntype = \"sim\"\n[[providers.models]]\nname = \"m\"\n"
      "[[providers.sim.outages]]\nend_s = 1\n"
      "[[moderation.engines]]\nname = \"p\"\ntype = \"pii\"\n");
  CHECK(by_path(spelled) == by_path(minimal));
}

TEST_CASE("docs/config.md is generated from the declaration") {
  const std::string path = TC_SOURCE_DIR "/docs/config.md";
  const std::string generated = tc::config::reference_markdown();
  const char* write = std::getenv("TC_WRITE_CONFIG_DOC");
  if (write != nullptr && std::string(write) == "1") {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << generated;
    REQUIRE(out.good());
  }
  std::ifstream in(path, std::ios::binary);
  std::ostringstream current;
  current << in.rdbuf();
  INFO(
      "docs/config.md is out of date: run TC_WRITE_CONFIG_DOC=1 test_config "
      "(or tcnode --print-config-reference > docs/config.md)");
  CHECK(current.str() == generated);
}

TEST_CASE("the reference lists every setting with its table, default and bounds") {
  const std::string md = tc::config::reference_markdown();
  for (const setting_decl& d : tc::config::schema()) {
    INFO(d.name);
    CHECK(md.find("| `" + std::string(tc::config::detail::leaf_of(d.name)) + "` |") !=
          std::string::npos);
  }
  for (const char* heading : {"## `[server]`", "## `[[providers]]`", "## `[[providers.models]]`",
                              "## `[providers.sim]`", "## `[[providers.sim.outages]]`"}) {
    CHECK(md.find(heading) != std::string::npos);
  }
  CHECK(md.find("| `io_threads` | integer | `1` | `1..64` |") != std::string::npos);
  CHECK(md.find("| `type` | string | `\"openai\"` | `openai`, `anthropic`, `sim` |") !=
        std::string::npos);
  CHECK(md.find("| `name` | string | required |") != std::string::npos);
  CHECK(md.find("tcnode --check-config FILE") != std::string::npos);
}
