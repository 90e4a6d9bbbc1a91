// The one declaration of every setting: dotted name, type, default, bounds and help. The loader
// validates against it and docs/config.md is generated from it.
#pragma once

#include <string_view>
#include <vector>

namespace tc::config {

enum class value_type { boolean, integer, floating, string, string_array, table_array };

struct setting_decl {
  std::string_view name;  ///< dotted path; "providers[].models[].name" inside arrays of tables
  value_type type;
  std::string_view default_text;  ///< as written in TOML ("" for none)
  double min = 0;                 ///< numeric bounds (ignored when min > max)
  double max = -1;
  std::string_view help;
  std::vector<std::string_view> choices = {};  ///< allowed strings, if restricted
};

/// All declared settings, in documentation order.
const std::vector<setting_decl>& schema();

}  // namespace tc::config
