// Walks a parsed TOML document against the declaration in schema.cpp: every key must be declared,
// every value must have the declared type, bounds, choices and form. Errors are collected (not
// thrown at the first) and reported together, each with file:line:col.
#include "config/loader.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <tuple>

#include "config/fields.hpp"
#include "protocol/scheduling/vocab.hpp"

namespace tc::config {
namespace {

using detail::field;
using detail::value;

struct position {
  uint32_t line = 0;
  uint32_t column = 0;
};

position position_of(const toml::source_region& r, position fallback) {
  if (r.begin.line == 0) return fallback;
  return {r.begin.line, r.begin.column};
}

std::string a_type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    default:
      return "nothing";
  }
}

std::string expected_type_name(value_type t) {
  switch (t) {
    case value_type::boolean:
      return "a boolean";
    case value_type::integer:
      return "an integer";
    case value_type::floating:
      return "a number";
    case value_type::string:
      return "a string";
    case value_type::string_array:
      return "an array of strings";
    case value_type::table_array:
      return "an array of tables";
  }
  return "?";
}

/// Optimal string alignment distance (a swap of two neighbours counts as one edit).
size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

/// "in [server]", "in [[providers.models]]" or "at top level" for a key prefix ("server.").
std::string where_text(std::string_view prefix) {
  std::string table = detail::table_of(std::string(prefix) + "x");
  return table.empty() ? "at top level" : "in " + table;
}

/// The prefix of the table holding a declared name ("providers[].models[].name" ->
/// "providers[].models[].").
std::string_view parent_prefix(std::string_view decl_name) {
  auto dot = decl_name.rfind('.');
  return dot == std::string_view::npos ? std::string_view{} : decl_name.substr(0, dot + 1);
}

class reader {
 public:
  explicit reader(std::string_view file) : file_(file) {}

  settings read(const toml::table& root) {
    settings s;
    const position top{1, 1};
    load_table(root, "", fields().root, s, top, [&](std::string_view name, const toml::node& n) {
      if (name == "moderation.engines") {
        each_table(n, "[[moderation.engines]]", [&](const toml::table& t) { read_engine(t, s); });
        return true;
      }
      if (name != "providers") return false;
      each_table(n, "[[providers]]", [&](const toml::table& t) { read_provider(t, s); });
      return true;
    });
    check_listen_addresses(root, s);
    check_aliases(root, s);
    check_groups(root, s);
    check_embedder(root, s);
    if (model_tables_ == 0) {
      global_.push_back(
          "nothing to serve: no model is configured; add a [[providers]] table with at least one "
          "[[providers.models]] (see config/tokenschain.toml)");
    }
    return s;
  }

  /// All errors, one per line, sorted by position; those without one come last.
  std::string report() const {
    auto sorted = issues_;
    std::stable_sort(sorted.begin(), sorted.end(), [](const issue& a, const issue& b) {
      return std::tie(a.at.line, a.at.column) < std::tie(b.at.line, b.at.column);
    });
    std::string out;
    auto line = [&](position p, const std::string& msg) {
      if (!out.empty()) out += '\n';
      out += std::string(file_) + ":" + std::to_string(p.line) + ":" + std::to_string(p.column) +
             ": " + msg;
    };
    for (const issue& i : sorted) line(i.at, i.message);
    for (const std::string& msg : global_) line({1, 1}, msg);
    return out;
  }

  bool ok() const { return issues_.empty() && global_.empty(); }

 private:
  struct issue {
    position at;
    std::string message;
  };

  static const detail::field_set& fields() { return detail::fields(); }

  void error(position at, std::string message) { issues_.push_back({at, std::move(message)}); }
  void error(const toml::node& n, std::string message) {
    error(position_of(n.source(), current_), std::move(message));
  }

  /// Reads the keys of table `t` (whose declared names start with `prefix`) into `owner`.
  /// `child` handles arrays of tables and tables that fill another struct; it returns false for
  /// names it does not know.
  template <class Owner, class Child>
  void load_table(const toml::table& t, std::string_view prefix,
                  const std::vector<field<Owner>>& fs, Owner& owner, position at, Child&& child) {
    position saved = current_;
    current_ = at;
    for (auto&& [k, node] : t) {
      std::string name = std::string(prefix) + std::string(k.str());
      const field<Owner>* f = find(fs, name);
      if (f != nullptr && f->decl.type != value_type::table_array) {
        read_value(*f, node, owner);
      } else if (child(std::string_view(name), node)) {
        // handled
      } else if (declares_table(fs, name)) {
        if (const toml::table* sub = node.as_table()) {
          load_table(*sub, name + ".", fs, owner, position_of(sub->source(), at), child);
        } else {
          error(node, "expected a table, got " + a_type_name(node));
        }
      } else {
        unknown_key(k, prefix);
      }
    }
    for (const auto& f : fs) {
      std::string_view leaf = detail::leaf_of(f.decl.name);
      if (f.required && parent_prefix(f.decl.name) == prefix && !t.contains(leaf)) {
        error(at, "missing required key '" + std::string(leaf) + "' " + where_text(prefix));
      }
    }
    current_ = saved;
  }

  template <class Owner>
  static const field<Owner>* find(const std::vector<field<Owner>>& fs, std::string_view name) {
    for (const auto& f : fs) {
      if (f.decl.name == name) return &f;
    }
    return nullptr;
  }

  template <class Owner>
  static bool declares_table(const std::vector<field<Owner>>& fs, const std::string& name) {
    for (const auto& f : fs) {
      if (f.decl.name.size() > name.size() && f.decl.name.substr(0, name.size()) == name &&
          f.decl.name[name.size()] == '.') {
        return true;
      }
    }
    return false;
  }

  /// Calls `fn` for each table of an array of tables; anything else is an error.
  template <class Fn>
  void each_table(const toml::node& n, std::string_view header, Fn&& fn) {
    const toml::array* arr = n.as_array();
    if (arr == nullptr) {
      std::string hint = n.is_table() ? " (write " + std::string(header) + " as the header)" : "";
      error(n, "expected an array of tables " + std::string(header) + ", got " + a_type_name(n) +
                   hint);
      return;
    }
    for (const toml::node& e : *arr) {
      if (const toml::table* t = e.as_table()) {
        fn(*t);
      } else {
        error(e, "expected a table, got " + a_type_name(e));
      }
    }
  }

  template <class Owner>
  void read_value(const field<Owner>& f, const toml::node& n, Owner& owner) {
    std::optional<value> v = typed(f.decl, n);
    if (!v) return;
    const setting_decl& d = f.decl;
    if ((d.type == value_type::integer || d.type == value_type::floating) && d.min <= d.max) {
      double x = std::holds_alternative<int64_t>(*v) ? static_cast<double>(std::get<int64_t>(*v))
                                                     : std::get<double>(*v);
      if (x < d.min || x > d.max) {
        std::string got = std::holds_alternative<int64_t>(*v)
                              ? std::to_string(std::get<int64_t>(*v))
                              : detail::format_number(x);
        error(n, "expected " + detail::bounds_text(d) + ", got " + got);
        return;
      }
    }
    if (d.type == value_type::string) {
      const std::string& s = std::get<std::string>(*v);
      if (!d.choices.empty() &&
          std::find(d.choices.begin(), d.choices.end(), s) == d.choices.end()) {
        error(n, "expected one of: " + detail::bounds_text(d) + "; got \"" + s + "\"");
        return;
      }
      if (f.check != nullptr) {
        if (std::string e = f.check(s); !e.empty()) {
          error(n, std::move(e));
          return;
        }
      }
    }
    if (d.type == value_type::string_array && f.check != nullptr) {
      bool all_ok = true;
      for (const toml::node& e : *n.as_array()) {
        if (std::string msg = f.check(*e.value<std::string>()); !msg.empty()) {
          error(e, std::move(msg));
          all_ok = false;
        }
      }
      if (!all_ok) return;
    }
    if (std::string e = f.store(owner, *v); !e.empty()) error(n, std::move(e));
  }

  /// The node as a value of the declared type, or nullopt after reporting why not.
  std::optional<value> typed(const setting_decl& d, const toml::node& n) {
    auto wrong = [&] {
      error(n, "expected " + expected_type_name(d.type) + ", got " + a_type_name(n));
      return std::nullopt;
    };
    switch (d.type) {
      case value_type::boolean:
        if (auto b = n.value_exact<bool>()) return value{*b};
        return wrong();
      case value_type::integer:
        if (auto i = n.value_exact<int64_t>()) return value{*i};
        return wrong();
      case value_type::floating:
        if (auto i = n.value_exact<int64_t>()) return value{*i};
        if (auto x = n.value_exact<double>()) {
          if (std::isfinite(*x)) return value{*x};
          error(n, "expected a finite number, got " + detail::format_number(*x));
          return std::nullopt;
        }
        return wrong();
      case value_type::string:
        if (auto s = n.value_exact<std::string>()) return value{*s};
        return wrong();
      case value_type::string_array: {
        const toml::array* arr = n.as_array();
        if (arr == nullptr) return wrong();
        std::vector<std::string> out;
        bool all_strings = true;
        for (const toml::node& e : *arr) {
          if (auto s = e.value_exact<std::string>()) {
            out.push_back(*s);
          } else {
            error(e, "expected a string, got " + a_type_name(e));
            all_strings = false;
          }
        }
        if (!all_strings) return std::nullopt;
        return value{std::move(out)};
      }
      case value_type::table_array:
        return wrong();
    }
    return std::nullopt;
  }

  void unknown_key(const toml::key& k, std::string_view prefix) {
    std::string key(k.str());
    std::string msg = "unknown key '" + key + "' " + where_text(prefix);
    if (key == "api_key" || key == "key") {
      msg +=
          ": keys never go in the file; put the key in an environment variable and set "
          "api_key_env to its NAME";
    } else if (std::string near = nearest_key(key, prefix); !near.empty()) {
      msg += "; did you mean '" + near + "'?";
    } else if (std::string home = table_declaring(key); !home.empty()) {
      msg += "; '" + key + "' belongs " + home;
    }
    error(position_of(k.source(), current_), std::move(msg));
  }

  /// The known key of the table at `prefix` closest to `key`, if within 2 edits.
  static std::string nearest_key(const std::string& key, std::string_view prefix) {
    std::string best;
    size_t best_distance = 3;
    for (const setting_decl& d : schema()) {
      if (d.name.substr(0, prefix.size()) != prefix || d.name.size() == prefix.size()) continue;
      std::string_view rest = d.name.substr(prefix.size());
      std::string_view known = rest.substr(0, rest.find_first_of(".["));
      size_t distance = edit_distance(key, known);
      if (distance < best_distance) {
        best_distance = distance;
        best = std::string(known);
      }
    }
    return best;
  }

  /// Where a key that exists in another table belongs ("in [server]"), or "".
  static std::string table_declaring(const std::string& key) {
    for (const setting_decl& d : schema()) {
      if (detail::leaf_of(d.name) == key) {
        std::string table = detail::table_of(d.name);
        return table.empty() ? "at top level" : "in " + table;
      }
    }
    return "";
  }

  void read_provider(const toml::table& t, settings& s) {
    provider_index_ = s.providers.size();
    provider_settings p;
    const position at = position_of(t.source(), current_);
    const toml::table* sim_table = nullptr;
    load_table(t, "providers[].", fields().provider, p, at,
               [&](std::string_view name, const toml::node& n) {
                 if (name == "providers[].models") {
                   each_table(n, "[[providers.models]]",
                              [&](const toml::table& mt) { read_model(mt, p); });
                   return true;
                 }
                 if (name == "providers[].sim") {
                   sim_table = n.as_table();
                   if (sim_table == nullptr) {
                     error(n, "expected a table, got " + a_type_name(n));
                   } else {
                     read_sim(*sim_table, p.sim, position_of(sim_table->source(), at));
                   }
                   return true;
                 }
                 return false;
               });

    // Cross checks, only where the values they depend on were valid.
    const toml::node* name_node = t.get("name");
    if (name_node != nullptr && !p.name.empty()) {
      auto [it, fresh] = provider_names_.emplace(p.name, position_of(name_node->source(), at));
      if (!fresh) {
        error(*name_node, "duplicate provider name \"" + p.name + "\" (first defined at line " +
                              std::to_string(it->second.line) + ")");
      }
    }
    const toml::node* type_node = t.get("type");
    bool type_known = type_node == nullptr || type_node->value_exact<std::string>() == p.type;
    if (type_known && p.type == "sim") {
      if (const toml::node* url = t.get("base_url")) {
        error(*url, "base_url is not allowed for a provider of type \"sim\" (it runs in-process)");
      }
    }
    if (type_known && (p.type == "openai" || p.type == "anthropic")) {
      if (t.get("base_url") == nullptr) {
        error(at, "missing required key 'base_url' in [[providers]] (required for type \"" +
                      p.type + "\")");
      }
      if (sim_table != nullptr) {
        error(position_of(sim_table->source(), at),
              "[providers.sim] is only allowed for a provider of type \"sim\"");
      }
    }
    if (type_known && p.type == "anthropic") {
      for (const auto& m : p.models) {
        if (m.kind != "chat")
          error(at, "model \"" + m.name +
                        "\": a provider of type \"anthropic\" serves chat "
                        "models only (the Messages API has no embeddings)");
      }
    }
    s.providers.push_back(std::move(p));
  }

  /// The first model-level setting two endpoints of one model disagree on ("kind (chat vs
  /// embedding)"), or "".
  static std::string model_difference(const model_settings& a, const model_settings& b) {
    auto text = [](const std::string& x) { return "\"" + x + "\""; };
    auto num = [](double x) { return detail::format_number(x); };
    if (a.kind != b.kind) return "kind (" + text(a.kind) + " vs " + text(b.kind) + ")";
    if (a.version != b.version)
      return "version (" + text(a.version) + " vs " + text(b.version) + ")";
    if (a.cache != b.cache) return "cache setting";
    if (a.cache_ttl_s != b.cache_ttl_s)
      return "cache_ttl_s (" + num(a.cache_ttl_s) + " vs " + num(b.cache_ttl_s) + ")";
    if (a.cache_nondeterministic != b.cache_nondeterministic)
      return "cache_nondeterministic setting";
    if (a.semantic_threshold != b.semantic_threshold)
      return "semantic_threshold (" + num(a.semantic_threshold) + " vs " +
             num(b.semantic_threshold) + ")";
    if (a.prefix_affinity != b.prefix_affinity) return "prefix_affinity setting";
    if (a.context_mode != b.context_mode)
      return "context_mode (" + text(a.context_mode) + " vs " + text(b.context_mode) + ")";
    if (a.tokenizer_file != b.tokenizer_file)
      return "tokenizer_file (" + text(a.tokenizer_file) + " vs " + text(b.tokenizer_file) + ")";
    if (a.filing_id != b.filing_id)
      return "filing_id (" + text(a.filing_id) + " vs " + text(b.filing_id) + ")";
    if (a.batch_strategy != b.batch_strategy)
      return "batch_strategy (" + text(a.batch_strategy) + " vs " + text(b.batch_strategy) + ")";
    if (a.batch_max_wait_ms != b.batch_max_wait_ms)
      return "batch_max_wait_ms (" + num(a.batch_max_wait_ms) + " vs " + num(b.batch_max_wait_ms) +
             ")";
    if (a.batch_max_size != b.batch_max_size)
      return "batch_max_size (" + num(a.batch_max_size) + " vs " + num(b.batch_max_size) + ")";
    if (a.auto_tier != b.auto_tier)
      return "auto_tier (" + text(a.auto_tier) + " vs " + text(b.auto_tier) + ")";
    if (a.batch_latency_target_ms != b.batch_latency_target_ms)
      return "batch_latency_target_ms (" + num(a.batch_latency_target_ms) + " vs " +
             num(b.batch_latency_target_ms) + ")";
    return "";
  }

  void read_model(const toml::table& t, provider_settings& p) {
    ++model_tables_;
    model_settings m;
    const position at = position_of(t.source(), current_);
    load_table(t, "providers[].models[].", fields().model, m, at,
               [](std::string_view, const toml::node&) { return false; });
    if (m.upstream_name.empty()) m.upstream_name = m.name;
    check_tokenizer(t, m);
    // A model id may be served by several providers (its endpoints, ranked by the router);
    // what the client sees of it (kind, cache policy, filing ID) must then be the same at each.
    const toml::node* name_node = t.get("name");
    if (name_node != nullptr && !m.name.empty()) {
      const position here = position_of(name_node->source(), at);
      auto [it, fresh] = model_names_.emplace(m.name, model_seen{here, provider_index_, m});
      if (!fresh && it->second.provider == provider_index_) {
        error(*name_node, "duplicate model name \"" + m.name + "\" in this provider (first " +
                              "defined at line " + std::to_string(it->second.at.line) + ")");
      } else if (!fresh) {
        const std::string differs = model_difference(it->second.model, m);
        if (!differs.empty()) {
          error(*name_node, "model \"" + m.name + "\" is also served at line " +
                                std::to_string(it->second.at.line) + " with another " + differs +
                                "; the endpoints of one model must agree on it");
        }
      }
    }
    p.models.push_back(std::move(m));
  }

  /// Resolves tokenizer_file against the config file's directory, and checks that it builds
  /// (each distinct file once).
  void check_tokenizer(const toml::table& t, model_settings& m) {
    const toml::node* n = t.get("tokenizer_file");
    if (n == nullptr || m.tokenizer_file.empty()) return;
    if (m.tokenizer_file.front() != '/') {
      const std::filesystem::path dir = std::filesystem::path(std::string(file_)).parent_path();
      m.tokenizer_file = (dir / m.tokenizer_file).lexically_normal().string();
    }
    auto [it, fresh] = tokenizer_errors_.emplace(m.tokenizer_file, std::string());
    if (fresh) load_tokenizer(m.tokenizer_file, it->second);
    if (!it->second.empty()) error(*n, "tokenizer_file: " + it->second);
  }

  void read_sim(const toml::table& t, sim_settings& sim, position at) {
    load_table(t, "providers[].sim.", fields().sim, sim, at,
               [&](std::string_view name, const toml::node& n) {
                 if (name != "providers[].sim.outages") return false;
                 each_table(n, "[[providers.sim.outages]]", [&](const toml::table& ot) {
                   sim_outage o;
                   load_table(ot, "providers[].sim.outages[].", fields().outage, o,
                              position_of(ot.source(), at),
                              [](std::string_view, const toml::node&) { return false; });
                   const toml::node* end = ot.get("end_s");
                   const toml::node* start = ot.get("start_s");
                   bool valid = end != nullptr && end->is_number() &&
                                (start == nullptr || start->is_number());
                   if (valid && o.end_s <= o.start_s) {
                     error(*end, "expected end_s > start_s (" + detail::format_number(o.start_s) +
                                     "), got " + detail::format_number(o.end_s));
                   }
                   sim.outages.push_back(o);
                 });
                 return true;
               });
  }

  void read_engine(const toml::table& t, settings& s) {
    moderation_engine_settings e;
    const position at = position_of(t.source(), current_);
    load_table(t, "moderation.engines[].", fields().engine, e, at,
               [](std::string_view, const toml::node&) { return false; });
    if (const toml::node* name_node = t.get("name"); name_node != nullptr && !e.name.empty()) {
      auto [it, fresh] = engine_names_.emplace(e.name, position_of(name_node->source(), at));
      if (!fresh) {
        error(*name_node, "duplicate engine name \"" + e.name + "\" (first defined at line " +
                              std::to_string(it->second.line) + ")");
      }
    }
    if (e.type == "keywords" && e.lexicons.empty())
      error(at, "a keywords engine needs at least one file in 'lexicons'");
    if ((e.type == "http" || e.type == "openai") && e.url.empty())
      error(at, "missing required key 'url' in [[moderation.engines]] (required for type \"" +
                    e.type + "\")");
    s.moderation.engines.push_back(std::move(e));
  }

  /// Each alias names a configured model and is not itself one, nor given twice.
  void check_aliases(const toml::table& root, const settings& s) {
    const toml::node* n = root.at_path("routing.aliases").node();
    if (n == nullptr) return;
    std::set<std::string> seen;
    for (const auto& a : s.routing.aliases) {
      const auto eq = a.find('=');
      if (eq == std::string::npos) continue;  // reported by its check
      const std::string alias = a.substr(0, eq), model = a.substr(eq + 1);
      if (model_names_.count(alias) != 0) {
        error(*n, "alias \"" + alias + "\" is already a model's name");
      } else if (model_names_.count(model) == 0) {
        error(*n, "alias \"" + alias + "\" names \"" + model + "\", which no provider serves");
      } else if (!seen.insert(alias).second) {
        error(*n, "alias \"" + alias + "\" is given twice");
      }
    }
  }

  /// Each group names served models of one kind, is not a model's or alias's name (nor the auto
  /// model's), is given once, and gives some member a weight; the auto model's id is new too.
  void check_groups(const toml::table& root, const settings& s) {
    std::set<std::string> taken;
    for (const auto& a : s.routing.aliases) taken.insert(a.substr(0, a.find('=')));
    if (const toml::node* n = root.at_path("routing.auto_model").node();
        n != nullptr && !s.routing.auto_model.empty()) {
      if (model_names_.count(s.routing.auto_model) != 0 || taken.count(s.routing.auto_model) != 0)
        error(*n, "auto_model \"" + s.routing.auto_model + "\" is already a model's or alias's id");
      taken.insert(s.routing.auto_model);
    }
    const toml::node* n = root.at_path("routing.groups").node();
    if (n == nullptr) return;
    for (const auto& g : s.routing.groups) {
      const auto eq = g.find('=');
      if (eq == std::string::npos) continue;  // reported by its check
      const std::string name = g.substr(0, eq);
      if (model_names_.count(name) != 0 || !taken.insert(name).second) {
        error(*n, "group \"" + name + "\" is already a model's, alias's or group's id");
        continue;
      }
      std::set<std::string> members;
      std::string kind;
      uint64_t total = 0;
      for (const auto& [model, weight] : parse_group(g.substr(eq + 1))) {
        auto m = model_names_.find(model);
        if (m == model_names_.end()) {
          error(*n, "group \"" + name + "\" names \"" + model + "\", which no provider serves");
        } else if (!members.insert(model).second) {
          error(*n, "group \"" + name + "\" names \"" + model + "\" twice");
        } else if (!kind.empty() && m->second.model.kind != kind) {
          error(*n, "group \"" + name + "\" mixes chat and embedding models");
        } else {
          kind = m->second.model.kind;
        }
        total += weight;
      }
      if (total == 0) error(*n, "group \"" + name + "\" gives no model a weight above 0");
    }
  }

  /// The openai embedder names a configured provider and a model to send.
  void check_embedder(const toml::table& root, const settings& s) {
    if (s.cache.embedder != "openai") return;
    const toml::node* kind = root.at_path("cache.embedder").node();
    const toml::node* provider = root.at_path("cache.embedder_provider").node();
    if (s.cache.embedder_provider.empty()) {
      if (kind != nullptr)
        error(*kind, "embedder \"openai\" needs cache.embedder_provider (a [[providers]] name)");
    } else if (provider_names_.count(s.cache.embedder_provider) == 0) {
      if (provider != nullptr)
        error(*provider, "embedder_provider \"" + s.cache.embedder_provider +
                             "\" names no [[providers]] entry");
    } else if (provider != nullptr) {
      for (const auto& p : s.providers) {
        if (p.name == s.cache.embedder_provider && p.type == "anthropic")
          error(*provider, "embedder_provider \"" + p.name +
                               "\" is an anthropic provider, which has no /v1/embeddings");
      }
    }
    if (s.cache.embedder_model.empty() && kind != nullptr)
      error(*kind, "embedder \"openai\" needs cache.embedder_model (the model name to send)");
  }

  void check_listen_addresses(const toml::table& root, const settings& s) {
    if (s.server.listen != s.server.admin_listen) return;
    if (s.server.listen.size() >= 2 && s.server.listen.substr(s.server.listen.size() - 2) == ":0") {
      return;  // two ephemeral ports never collide
    }
    const toml::node* n = root.at_path("server.admin_listen").node();
    if (n == nullptr) n = root.at_path("server.listen").node();
    if (n == nullptr) return;
    error(*n, "admin_listen must differ from listen (both are \"" + s.server.listen + "\")");
  }

  std::string_view file_;
  position current_{1, 1};  ///< the table being read: where errors without a source go
  std::vector<issue> issues_;
  std::vector<std::string> global_;
  std::map<std::string, position> provider_names_;
  struct model_seen {
    position at;      ///< where the name was first declared
    size_t provider;  ///< index of its provider in settings::providers
    model_settings model;
  };
  std::map<std::string, model_seen> model_names_;
  size_t provider_index_ = 0;  ///< the [[providers]] table being read
  std::map<std::string, position> engine_names_;
  std::map<std::string, std::string> tokenizer_errors_;  ///< resolved path -> "" or why not
  size_t model_tables_ = 0;
};

}  // namespace

std::vector<std::pair<std::string, uint32_t>> parse_group(std::string_view members) {
  std::vector<std::pair<std::string, uint32_t>> out;
  while (true) {
    const auto comma = members.find(',');
    std::string_view item = members.substr(0, comma);
    const auto colon = item.find(':');
    std::string_view model = item.substr(0, colon);
    uint64_t weight = 1;
    if (colon != std::string_view::npos) {
      std::string_view w = item.substr(colon + 1);
      if (w.empty() || w.size() > 7) return {};
      weight = 0;
      for (char c : w) {
        if (c < '0' || c > '9') return {};
        weight = weight * 10 + static_cast<uint64_t>(c - '0');
      }
      if (weight > 1'000'000) return {};
    }
    if (model.empty()) return {};
    out.emplace_back(std::string(model), static_cast<uint32_t>(weight));
    if (comma == std::string_view::npos) break;
    members.remove_prefix(comma + 1);
  }
  return out;
}

std::shared_ptr<const scheduling::token_counter> load_tokenizer(const std::string& path,
                                                                std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot open " + path + " (" + std::strerror(errno) + ")";
    return nullptr;
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    error = "cannot read " + path;
    return nullptr;
  }
  std::string why;
  std::shared_ptr<const scheduling::token_counter> counter =
      scheduling::vocab_counter::from_json(text.str(), why);
  if (counter == nullptr) error = path + " cannot be used: " + why;
  return counter;
}

settings load_string(std::string_view toml_text, std::string_view source_name) {
  toml::table root;
  try {
    root = toml::parse(toml_text, source_name);
  } catch (const toml::parse_error& e) {
    const auto& b = e.source().begin;
    throw config_error(std::string(source_name) + ":" + std::to_string(b.line) + ":" +
                       std::to_string(b.column) + ": " + std::string(e.description()));
  }
  reader r(source_name);
  settings s = r.read(root);
  if (!r.ok()) throw config_error(r.report());
  return s;
}

settings load_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw config_error(path + ": cannot open the configuration file (" + std::strerror(errno) +
                       ")");
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw config_error(path + ": cannot read the configuration file");
  settings s = load_string(text.str(), path);
  // Lexicon paths are relative to the configuration file, wherever the node is started from.
  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  for (auto& e : s.moderation.engines) {
    for (auto& f : e.lexicons) {
      if (!f.empty() && f.front() != '/') f = (dir / f).lexically_normal().string();
    }
  }
  return s;
}

}  // namespace tc::config
