// OpenAI chat completion request -> Anthropic Messages API request (POST /v1/messages).
// Pure; any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "protocol/openai/error.hpp"

namespace tc::anthropic {

/// Where the translation places Anthropic prompt-cache breakpoints.
enum class cache_control : uint8_t {
  none,              ///< no cache_control anywhere
  system_and_tools,  ///< {"type":"ephemeral"} on the last tool and the last system block
};

/// Settings of one translation (from the provider's configuration).
struct request_options {
  uint32_t max_tokens_default = 4096;  ///< max_tokens when the client set none (Anthropic needs it)
  anthropic::cache_control cache_control = anthropic::cache_control::none;
};

/// A translated request.
struct messages_request {
  std::string body;            ///< the Messages API JSON body
  bool stream = false;         ///< the client asked for a stream
  bool include_usage = false;  ///< stream_options.include_usage (for the stream_translator)
};

/// Translates the OpenAI chat completion `chat_body` into a Messages API body for
/// `upstream_model`. Errors are 400 invalid_request_error naming the offending `param`: a body
/// that is not a JSON object, a wrong type, an invalid tool-call arguments string, and the
/// parameters Anthropic cannot honour (n > 1, logprobs, top_logprobs, response_format other
/// than text, logit_bias, audio output, legacy functions/function_call, role "function").
std::variant<messages_request, openai::api_error> to_messages_request(
    std::string_view chat_body, std::string_view upstream_model, const request_options& options);

}  // namespace tc::anthropic
