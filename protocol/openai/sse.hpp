// Server-sent events framing as OpenAI streams use it: `data: <json>\n\n` events, a final
// `data: [DONE]\n\n`, and an `event: error` for a stream that fails after its first byte.
// Pure; any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "protocol/openai/error.hpp"

namespace tc::openai {

/// The terminating event of a clean stream.
inline constexpr std::string_view sse_done = "data: [DONE]\n\n";

/// `data: <payload>\n\n`.
std::string sse_data(std::string_view payload);

/// `event: error\ndata: <error envelope>\n\n`: the end of a stream that failed mid-way.
std::string sse_error(const api_error& e);
/// The same event for an envelope already serialized (a dedup leader's error, relayed).
std::string sse_error(std::string_view envelope);

/// Splits an incoming byte stream into SSE events, across arbitrary chunk boundaries.
/// Handles \n, \r\n and \r line ends, multi-line data, comments and the `event:` field.
class sse_splitter {
 public:
  struct event {
    std::string_view name;  ///< `event:` field, empty for the default
    std::string_view data;  ///< data lines joined by \n
  };
  /// Feeds bytes; calls on_event for each complete event. Returns false (and stops) if the
  /// buffered incomplete event would exceed max_event_bytes.
  bool feed(std::string_view bytes, const std::function<void(const event&)>& on_event);
  /// Bytes of an incomplete event held back.
  std::size_t pending() const { return buf_.size(); }

  std::size_t max_event_bytes = 1 << 20;

 private:
  std::string buf_;
  std::string data_;
  std::string name_;
};

/// Token usage as OpenAI reports it.
struct usage {
  uint32_t prompt_tokens = 0;
  uint32_t completion_tokens = 0;
  uint32_t total_tokens = 0;
  uint32_t cached_tokens = 0;  ///< prompt_tokens_details.cached_tokens

  template <class Inspector>
  friend auto inspect(Inspector& f, usage& x) {
    return f(x.prompt_tokens, x.completion_tokens, x.total_tokens, x.cached_tokens);
  }
};

/// The top-level "usage" object of a response or stream chunk, if present and non-null.
std::optional<usage> find_usage(std::string_view json);

}  // namespace tc::openai
