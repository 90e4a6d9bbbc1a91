// Loads and validates the TOML configuration (toml++) into config::settings. Runs at start-up
// only; errors are exceptions caught at main.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/settings.hpp"
#include "protocol/scheduling/context.hpp"

namespace tc::config {

/// A configuration error: "FILE:LINE:COL: what was wrong, what was expected".
class config_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Parses a TOML file. Unknown keys, wrong types and out-of-bounds values throw config_error
/// naming file:line:col. Cross-field checks too (unique provider and model names, a sim
/// provider has no base_url, an openai provider has one, ...).
settings load_file(const std::string& path);

/// Same, from text; `source_name` stands for the file name in errors.
settings load_string(std::string_view toml_text, std::string_view source_name = "<string>");

/// The members of the right side of a routing.groups entry, "model:weight,model:weight" (a
/// model without ":weight" weighs 1), in order; empty when it does not parse.
std::vector<std::pair<std::string, uint32_t>> parse_group(std::string_view members);

/// The exact token counter of a tokenizer.json file (providers[].models[].tokenizer_file; the
/// loader has resolved the path): null, with `error` saying why, when the file cannot be read
/// or does not build (scheduling::vocab_counter's refusals).
std::shared_ptr<const scheduling::token_counter> load_tokenizer(const std::string& path,
                                                                std::string& error);

/// The configuration reference (docs/config.md): every setting with type, default, bounds and
/// help, generated from the one declaration in config/schema.cpp.
std::string reference_markdown();

}  // namespace tc::config
