// How each declared setting maps onto its field in config/settings.hpp. Internal to config/
// (loader, reference, tests): the declaration and the binding live in one row of schema.cpp, so
// a setting cannot be declared without saying where it goes.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "config/schema.hpp"
#include "config/settings.hpp"

namespace tc::config::detail {

/// A TOML value already checked against its declaration's type (integers may stand for floats).
using value = std::variant<bool, int64_t, double, std::string, std::vector<std::string>>;

/// Extra check of a string's form (HOST:PORT, a name pattern ...); returns the error or "".
using string_check = std::string (*)(std::string_view);

/// One declared setting bound to a field of `Owner` (the struct its table fills).
template <class Owner>
struct field {
  setting_decl decl;
  bool required = false;         ///< the key must be present in its table
  string_check check = nullptr;  ///< strings (and string array elements) only
  /// Stores a value that passed type, bounds and `check`; returns an error (C++ range) or "".
  std::function<std::string(Owner&, const value&)> store;
  /// The field's current value as TOML text. Both are null for arrays of tables.
  std::function<std::string(const Owner&)> show;
};

/// Every declaration grouped by the struct it fills, each group in documentation order.
struct field_set {
  std::vector<field<settings>> root;  ///< top level, [server], [actors], [log], providers
  std::vector<field<provider_settings>> provider;         ///< [[providers]]
  std::vector<field<model_settings>> model;               ///< [[providers.models]]
  std::vector<field<sim_settings>> sim;                   ///< [providers.sim]
  std::vector<field<sim_outage>> outage;                  ///< [[providers.sim.outages]]
  std::vector<field<moderation_engine_settings>> engine;  ///< [[moderation.engines]]
};

/// The one declaration (built once, never changes).
const field_set& fields();

/// A declared scalar's value in a settings tree: `path` has indices ("providers[0].name").
struct flat_value {
  const setting_decl* decl;
  std::string path;
  std::string toml_text;  ///< as TOML would write it: 1, 0.5, "x", ["a", "b"], true
};

/// Every declared scalar of `s`, in schema order, with array-of-table entries expanded.
std::vector<flat_value> flatten(const settings& s);

/// Formats a number the way default_text and messages write it: integers without ".0".
std::string format_number(double v);

/// `decl`'s bounds or choices as text ("1..64", ">= 0", "debug, info"); "" when none.
std::string bounds_text(const setting_decl& decl);

/// The TOML table header a declared name lives in: "" (top level), "[server]",
/// "[[providers.models]]", "[providers.sim]".
std::string table_of(std::string_view decl_name);

/// The key of a declared name inside its table ("providers[].models[].name" -> "name").
std::string_view leaf_of(std::string_view decl_name);

}  // namespace tc::config::detail
