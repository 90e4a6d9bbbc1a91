// Anthropic token usage and its OpenAI form, shared by the response and stream translators.
// Pure; any thread.
#pragma once

#include <cstdint>
#include <string>

#include <rapidjson/document.h>

namespace tc::anthropic {

/// Token counts as Anthropic reports them (message usage, message_start, message_delta).
struct usage {
  uint32_t input_tokens = 0;
  uint32_t output_tokens = 0;
  uint32_t cache_read_input_tokens = 0;
  uint32_t cache_creation_input_tokens = 0;

  /// Takes each count present in the Anthropic usage object `u` (absent ones are kept, since
  /// message_delta may carry only output_tokens).
  void update(const rapidjson::Value& u);
  /// prompt_tokens = input + cache read + cache creation (saturated).
  uint32_t prompt_tokens() const;
  /// Appends the OpenAI usage object: prompt_tokens, completion_tokens, total_tokens,
  /// prompt_tokens_details.cached_tokens (= cache_read_input_tokens).
  void append_openai(std::string& out) const;
};

}  // namespace tc::anthropic
