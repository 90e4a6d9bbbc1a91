// docs/config.md, generated from the declaration in schema.cpp (tests/config fails when the
// file in the tree differs from this output).
#include <algorithm>
#include <map>
#include <string>

#include "config/fields.hpp"
#include "config/loader.hpp"

namespace tc::config {
namespace {

constexpr std::string_view intro = R"(# Configuration reference

<!-- Generated from config/schema.cpp by `tcnode --print-config-reference`; do not edit.
     tests/config fails when this file is out of date; regenerate it with
     `TC_WRITE_CONFIG_DOC=1 test_config` or `tcnode --print-config-reference > docs/config.md`. -->

A node reads one [TOML](https://toml.io) file. `config/tokenschain.toml` is the documented
default: it serves three simulated models and needs no API key. Check a file without starting
the node with:

    tcnode --check-config FILE

Rules:

- Every key is declared once (name, type, default, bounds, help) and listed below. An unknown key,
  a value of the wrong type, out of bounds or not one of the allowed choices fails start-up.
  All errors are reported at once, one per line, as `FILE:LINE:COL: message`; a misspelt key
  gets a suggestion (`did you mean 'io_threads'?`).
- Where a float is expected an integer is fine (`ttft_ms = 50`); where an integer is expected a
  float is an error (`io_threads = 2.0`).
- API keys never go in the file. A provider names the environment variable holding its key in
  `api_key_env` (for example `api_key_env = "DEEPSEEK_API_KEY"`, then
  `export DEEPSEEK_API_KEY=...` before starting the node). A value that looks like a key
  (`sk-...`) is rejected.
- At least one model must be configured. A model id may be served by several providers: each
  is an endpoint of that model, ranked per request by `[routing]`, with failover to the next.
  Their `kind`, `version`, cache settings and `filing_id` must then agree; upstream names,
  context windows and prices may differ. Within one provider a model id appears once.
- Keys absent from the file take the default shown. "required" means the key must be present.
)";

std::string_view type_label(value_type t) {
  switch (t) {
    case value_type::boolean:
      return "boolean";
    case value_type::integer:
      return "integer";
    case value_type::floating:
      return "float";
    case value_type::string:
      return "string";
    case value_type::string_array:
      return "array of strings";
    case value_type::table_array:
      return "array of tables";
  }
  return "?";
}

std::string escape_cell(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '|') out += '\\';
    out += c;
  }
  return out;
}

/// A sentence about a table (its heading is the table itself).
std::string section_note(const std::string& table) {
  if (table.empty()) return "Top-level keys.";
  if (table == "[server]") return "The HTTP front end: the data port and the admin port.";
  if (table == "[actors]") return "The actor runtime (CAF 0.17 scheduler).";
  if (table == "[log]") return "Structured JSON logs.";
  if (table == "[cache]") {
    return "The response cache and in-flight dedup (docs/cache.md). Per-model policy (TTL, "
           "threshold, determinism) is set on each model.";
  }
  if (table == "[providers.sim]") {
    return "Only for `type = \"sim\"`: the simulated GPU endpoint (deterministic text, real token "
           "counts, a tokens/sec and batching model, fault injection). Optional.";
  }
  // An array of tables is described by its own declaration ("providers[].models").
  for (const setting_decl& d : schema()) {
    if (d.type == value_type::table_array &&
        detail::table_of(std::string(d.name) + "[].x") == table) {
      return std::string(d.help) + ".";
    }
  }
  return "";
}

}  // namespace

std::string reference_markdown() {
  const detail::field_set& fs = detail::fields();
  std::map<std::string_view, bool> required;
  auto note_required = [&](const auto& group) {
    for (const auto& f : group) required[f.decl.name] = f.required;
  };
  note_required(fs.root);
  note_required(fs.provider);
  note_required(fs.model);
  note_required(fs.sim);
  note_required(fs.outage);
  note_required(fs.engine);

  // Group rows by table, tables in order of first appearance.
  std::vector<std::pair<std::string, std::vector<const setting_decl*>>> tables;
  for (const setting_decl& d : schema()) {
    std::string table = detail::table_of(d.name);
    auto it =
        std::find_if(tables.begin(), tables.end(), [&](const auto& t) { return t.first == table; });
    if (it == tables.end()) it = tables.insert(tables.end(), {table, {}});
    it->second.push_back(&d);
  }

  std::string out(intro);
  for (const auto& [table, rows] : tables) {
    out += "\n## " + (table.empty() ? std::string("Top level") : "`" + table + "`") + "\n\n";
    out += section_note(table) + "\n\n";
    out += "| Key | Type | Default | Allowed | Description |\n";
    out += "|---|---|---|---|---|\n";
    for (const setting_decl* d : rows) {
      std::string def = required[d->name]         ? "required"
                        : d->default_text.empty() ? "-"
                                                  : "`" + escape_cell(d->default_text) + "`";
      std::string allowed;
      for (std::string_view c : d->choices)
        allowed += (allowed.empty() ? "`" : ", `") + std::string(c) + "`";
      if (allowed.empty() && !detail::bounds_text(*d).empty()) {
        allowed = "`" + detail::bounds_text(*d) + "`";
      }
      out += "| `" + std::string(detail::leaf_of(d->name)) + "` | " +
             std::string(type_label(d->type)) + " | " + def + " | " + allowed + " | " +
             escape_cell(d->help) + " |\n";
    }
  }
  return out;
}

}  // namespace tc::config
