// sim_settings as JSON, for tcsim's GET/POST /sim/settings (run-time fault injection). The JSON
// names are the struct's field names; outages are [{"start_s":..,"end_s":..}]. Pure; any thread.
#pragma once

#include <string>
#include <string_view>

#include "config/settings.hpp"

namespace tc::sim {

/// Every field of s as one JSON object.
std::string settings_to_json(const config::sim_settings& s);

/// Applies a JSON object holding any subset of the fields to s. Unknown names, wrong types and
/// out-of-range values fail with a message; s is then unchanged.
bool apply_settings_json(std::string_view json, config::sim_settings& s, std::string& error);

/// Parses "START:END" (seconds since start, START < END) into an outage window.
bool parse_outage(std::string_view spec, config::sim_outage& out);

}  // namespace tc::sim
