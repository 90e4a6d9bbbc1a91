// The virtual `auto` model (issue 6): what a request looks like (size, tools, code, turns), whether
// that makes it light or heavy work, and the cheapest model that can take it. Pure; any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tc::routing {

/// What classify() reads from a request.
struct request_features {
  uint32_t prompt_tokens = 0;  ///< estimated input tokens (tc::estimate_tokens)
  uint32_t max_tokens = 0;     ///< the request's max_tokens; 0 = not set
  bool tools = false;          ///< the request offers tools
  bool code = false;           ///< the input holds code (see features_of)
  uint32_t turns = 0;          ///< messages in the conversation
};

/// The features of a request from the pieces a caller has: its input texts (e.g.
/// openai::input_texts), max_tokens, whether it has tools, and its message count. `code` is set
/// by a fenced block (```), or by three or more signs among code idioms ("#include", "def ",
/// "=>", "==", "&&", "console.log", ...) and lines ending in ';', '{' or '}'. Only the first
/// 64 KiB of text are searched for code (a prompt that long is heavy by size under the default
/// thresholds); every byte counts toward prompt_tokens.
request_features features_of(const std::vector<std::string>& texts, uint32_t max_tokens, bool tools,
                             uint32_t turns);

enum class weight_class : uint8_t { light, heavy };
/// "light" | "heavy" -> weight_class; false otherwise.
bool parse_weight_class(std::string_view name, weight_class& out);
std::string_view to_string(weight_class c);

/// When a request counts as heavy. The defaults: a prompt over 2,000 tokens, tools, code, or
/// max_tokens over 1,024; turns never (0 = off).
struct auto_thresholds {
  uint32_t heavy_prompt_tokens = 2'000;  ///< heavy when prompt_tokens > this
  uint32_t heavy_max_tokens = 1'024;     ///< heavy when max_tokens > this
  bool tools_heavy = true;               ///< heavy when the request offers tools
  bool code_heavy = true;                ///< heavy when the input holds code
  uint32_t heavy_turns = 0;              ///< heavy when turns > this; 0 = turns do not count
};

/// heavy if any threshold of `t` is crossed, else light.
weight_class classify(const request_features& f, const auto_thresholds& t = {});

/// One model `auto` may choose.
struct auto_choice {
  std::string name;
  weight_class tier = weight_class::light;  ///< heavy = capable of heavy work (and light)
  uint32_t context_window = 0;              ///< tokens; 0 = unknown, taken to fit
  double price_in_per_m = 0;                ///< same currency for every choice
  double price_out_per_m = 0;
};

/// Output tokens expected of a request that does not set max_tokens: what pick_auto prices and
/// keeps room for in the context window.
inline constexpr uint32_t default_expected_out_tokens = 512;

/// The cheapest model for a request of class `c`: among the models of tier heavy (for heavy
/// work) or any tier (light), those whose context window holds prompt_tokens plus the expected
/// output (max_tokens, or default_expected_out_tokens when not set), the one with the lowest
/// expected cost prompt_tokens * price_in + output * price_out. Equal costs: the larger window,
/// then the name, then the index. nullopt when none fits. Negative or non-finite prices count
/// as 0.
std::optional<size_t> pick_auto(const std::vector<auto_choice>& models, const request_features& f,
                                weight_class c);

}  // namespace tc::routing
