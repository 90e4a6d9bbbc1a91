// Context-length protection for chat requests (issue 6, DESIGN §2 step 3): estimate the prompt
// of a chat body and, when it and the reserved output do not fit the model's context window,
// refuse it or drop whole messages until it fits. Pure; any thread.
//
// Prompt tokens = reply priming + the `tools` (and legacy `functions`) JSON text + for each
// message: a per-message overhead + its text (content strings, text parts, name + 1,
// tool-call names and arguments, tool_call_id) + 85 per non-text content part (an image or
// audio part; OpenAI's low-detail image price, a floor). The overheads are OpenAI's rule of
// thumb for its chat format (about 4 tokens per message, 3 to prime the reply); other models'
// templates differ by a few tokens per message.
//
// Truncation drops whole turns: a turn is a user message and the messages after it up to the
// next user message (the assistant's answers, its tool calls with their results), so a tool
// call is never parted from its results and user/assistant alternation, which some chat
// templates require, is kept. Non-system messages before the first user message form a turn
// of their own. System and developer messages are always kept, and so is the last turn (the
// last user message and everything after it).
// - truncate_oldest drops the oldest turns first.
// - truncate_middle also keeps the first turn, and drops the oldest turns after it first (so
//   the newest turns are kept).
// A rewritten body differs from the input only inside the `messages` array: the kept messages'
// bytes are copied as they were, joined by ','; every other byte of the body is unchanged.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace tc::scheduling {

enum class context_mode : uint8_t { reject, truncate_oldest, truncate_middle };
/// "reject" | "truncate_oldest" | "truncate_middle" -> mode; false otherwise.
bool parse_context_mode(std::string_view name, context_mode& out);
std::string_view to_string(context_mode m);

/// Counts prompt tokens. Implementations are immutable after construction and thread-safe.
class token_counter {
 public:
  virtual ~token_counter() = default;
  /// Tokens of one piece of UTF-8 text (a content string, a name, tool-call arguments).
  virtual uint32_t count(std::string_view utf8_text) const = 0;
  /// Tokens each message adds beyond its text: role and framing.
  virtual uint32_t per_message() const { return 4; }
  /// Tokens that prime the reply, once per request.
  virtual uint32_t reply_priming() const { return 3; }
  /// At most this many tokens per byte of text: a chat body that many times shorter than the
  /// window (less the reserve) fits without being counted.
  virtual uint32_t max_tokens_per_byte() const { return 1; }
};

/// tc::estimate_tokens: no tokenizer file needed (about 4 ASCII characters or 1 CJK character
/// per token).
class estimate_counter final : public token_counter {
 public:
  uint32_t count(std::string_view utf8_text) const override;
};

/// A shared estimate_counter.
const token_counter& default_counter();

struct context_result {
  bool fits = false;           ///< the prompt (as rewritten) and the reserved output fit the window
  bool changed = false;        ///< messages were dropped: send `body` instead of the original
  std::string body;            ///< the rewritten body when changed, else empty
  uint32_t prompt_tokens = 0;  ///< estimate of the prompt sent (the original when !changed)
  uint32_t dropped_messages = 0;  ///< messages removed
};

/// Checks `chat_body` against `context_window` tokens with `reserve_output_tokens` kept for the
/// answer, and under a truncate mode drops messages until it fits. fits=false when the minimum
/// (see the file comment) does not fit, under reject when the body does not fit, and for a body
/// that is not a JSON object with one `messages` array of objects (the caller validates first).
context_result protect_context(std::string_view chat_body, uint32_t context_window,
                               uint32_t reserve_output_tokens, context_mode mode,
                               const token_counter& count = default_counter());

}  // namespace tc::scheduling
