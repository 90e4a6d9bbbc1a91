// The `auto` model: request features, the light/heavy class, and the cheapest model that fits.
#include "protocol/routing/auto_model.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <iterator>

#include "protocol/tokens.hpp"

namespace tc::routing {

namespace {

constexpr size_t code_scan_bytes = 64 * 1024;
constexpr int code_signs_needed = 3;

/// Idioms seldom seen in prose; each counts once however often it occurs.
constexpr std::string_view code_idioms[] = {
    "#include",  "std::",    "def ",    "elif ",    "self.",      "this.",
    "=>",        "console.", "printf(", "println(", "System.out", "public static",
    "){",        ") {",      "};",      "!=",       "==",         "&&",
    "||",        "++",       "</",      "/>",       "#!/",        "$(",
    "fn ",       "let mut",  "nullptr", ":=",       "func ",      "int main(",
    "SELECT * ", "__init__"};

bool has_code(const std::vector<std::string>& texts) {
  size_t budget = code_scan_bytes;
  std::array<bool, std::size(code_idioms)> seen{};
  int signs = 0;
  for (const std::string& text : texts) {
    if (budget == 0) break;
    const std::string_view t = std::string_view(text).substr(0, budget);
    budget -= t.size();
    if (t.find("```") != std::string_view::npos) return true;
    for (size_t i = 0; i < std::size(code_idioms); ++i) {
      if (!seen[i] && t.find(code_idioms[i]) != std::string_view::npos) {
        seen[i] = true;
        ++signs;
      }
    }
    // Lines ending in ';', '{' or '}' (trailing blanks aside).
    size_t begin = 0;
    while (begin < t.size() && signs < code_signs_needed) {
      size_t end = t.find('\n', begin);
      if (end == std::string_view::npos) end = t.size();
      size_t last = end;
      while (last > begin && (t[last - 1] == ' ' || t[last - 1] == '\t' || t[last - 1] == '\r')) {
        --last;
      }
      if (last > begin && (t[last - 1] == ';' || t[last - 1] == '{' || t[last - 1] == '}')) {
        ++signs;
      }
      begin = end + 1;
    }
    if (signs >= code_signs_needed) return true;
  }
  return false;
}

double price(double p) {
  return std::isfinite(p) && p > 0 ? p : 0;
}

}  // namespace

request_features features_of(const std::vector<std::string>& texts, uint32_t max_tokens, bool tools,
                             uint32_t turns) {
  request_features f;
  uint64_t tokens = 0;
  for (const std::string& t : texts) tokens += estimate_tokens(t);
  f.prompt_tokens = static_cast<uint32_t>(std::min<uint64_t>(tokens, UINT32_MAX));
  f.max_tokens = max_tokens;
  f.tools = tools;
  f.code = has_code(texts);
  f.turns = turns;
  return f;
}

bool parse_weight_class(std::string_view name, weight_class& out) {
  for (weight_class c : {weight_class::light, weight_class::heavy}) {
    if (name == to_string(c)) {
      out = c;
      return true;
    }
  }
  return false;
}

std::string_view to_string(weight_class c) {
  return c == weight_class::heavy ? "heavy" : "light";
}

weight_class classify(const request_features& f, const auto_thresholds& t) {
  const bool heavy = f.prompt_tokens > t.heavy_prompt_tokens || f.max_tokens > t.heavy_max_tokens ||
                     (t.tools_heavy && f.tools) || (t.code_heavy && f.code) ||
                     (t.heavy_turns > 0 && f.turns > t.heavy_turns);
  return heavy ? weight_class::heavy : weight_class::light;
}

std::optional<size_t> pick_auto(const std::vector<auto_choice>& models, const request_features& f,
                                weight_class c) {
  const uint64_t out = f.max_tokens > 0 ? f.max_tokens : default_expected_out_tokens;
  const uint64_t needed = uint64_t{f.prompt_tokens} + out;
  std::optional<size_t> best;
  double best_cost = 0;
  for (size_t i = 0; i < models.size(); ++i) {
    const auto_choice& m = models[i];
    if (c == weight_class::heavy && m.tier != weight_class::heavy) continue;
    if (m.context_window != 0 && needed > m.context_window) continue;
    const double cost = static_cast<double>(f.prompt_tokens) * price(m.price_in_per_m) +
                        static_cast<double>(out) * price(m.price_out_per_m);
    bool better = !best || cost < best_cost;
    if (best && cost == best_cost) {
      const auto_choice& b = models[*best];
      const uint64_t window = m.context_window == 0 ? UINT64_MAX : m.context_window;
      const uint64_t best_window = b.context_window == 0 ? UINT64_MAX : b.context_window;
      better = window != best_window ? window > best_window : m.name < b.name;
    }
    if (better) {
      best = i;
      best_cost = cost;
    }
  }
  return best;
}

}  // namespace tc::routing
