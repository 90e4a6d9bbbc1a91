// Anthropic Messages API response -> OpenAI chat.completion. Pure; any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "protocol/openai/error.hpp"

namespace tc::anthropic {

/// The OpenAI finish_reason of an Anthropic stop_reason: end_turn, stop_sequence -> "stop",
/// max_tokens -> "length", tool_use -> "tool_calls", refusal -> "content_filter"; anything else
/// (pause_turn, null, a future reason) -> "stop".
std::string_view finish_reason(std::string_view stop_reason);

/// Translates a successful Messages API answer `body` into a chat.completion JSON reporting
/// `model` and `created` (Unix seconds; pure code has no clock): id "chatcmpl-" + the message
/// id; one choice whose content is the text blocks joined (null when there is none and there
/// are tool calls), tool_use blocks as tool_calls (arguments = input serialized), other block
/// types (thinking, server tools) dropped; usage with prompt_tokens = input_tokens +
/// cache_read_input_tokens + cache_creation_input_tokens and
/// prompt_tokens_details.cached_tokens = cache_read_input_tokens. A body that is not such a
/// message is a 502 upstream_error (an Anthropic error body is mapped by to_openai_error).
std::variant<std::string, openai::api_error> to_chat_completion(std::string_view body,
                                                                std::string_view model,
                                                                int64_t created);

}  // namespace tc::anthropic
