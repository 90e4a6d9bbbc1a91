// Parsing and validation of client requests for the OpenAI endpoints. The body is parsed once
// (RapidJSON, iterative, UTF-8 validated) into the few typed fields the gateway acts on; the raw
// body is kept to be forwarded unchanged. Pure; any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "protocol/openai/error.hpp"

namespace tc::openai {

enum class endpoint : uint8_t { chat_completions = 0, completions = 1, embeddings = 2 };

/// "/v1/chat/completions", "/v1/completions", "/v1/embeddings".
std::string_view path_of(endpoint e);

/// What the gateway reads from a request. Everything else stays in `body` untouched.
struct request {
  endpoint kind = endpoint::chat_completions;
  std::string model;
  bool stream = false;
  bool include_usage = false;  ///< stream_options.include_usage
  uint32_t max_tokens = 0;     ///< max_tokens or max_completion_tokens; 0 = not set
  std::optional<double> temperature;
  std::optional<int64_t> seed;
  uint32_t n = 1;
  bool has_tools = false;      ///< a non-empty tools array
  uint32_t message_count = 0;  ///< chat: messages; completions: prompts; embeddings: inputs
  uint32_t input_chars = 0;    ///< UTF-8 bytes of all text content (for token estimates)
  std::string user;            ///< the `user` field, if any
  std::string body;            ///< the raw request body as received
};  // inspect() is in protocol/messages.hpp (std::optional needs CAF 0.17 callbacks)

/// Parses and validates `body` for endpoint `kind`. Errors are 400 invalid_request_error with
/// `param` naming the offending field: not JSON, not UTF-8, not an object, a missing
/// `model`/`messages`/`prompt`/`input`, or a known field of the wrong type or out of range.
/// The same endpoint and bytes as a recent success on the same thread are answered from a
/// per-thread memo (protocol/memo.hpp) without parsing again.
std::variant<request, api_error> parse_request(endpoint kind, std::string body);

/// Returns a copy of `body` with the top-level "model" value replaced by `upstream_model`
/// (providers may name the model differently). Other bytes are kept as they were.
std::string with_model(std::string_view body, std::string_view upstream_model);

}  // namespace tc::openai
