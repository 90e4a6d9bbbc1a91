// Anthropic Messages stream -> OpenAI chat.completion.chunk stream. Pure; any thread (one
// translator per stream, used by one thread at a time).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/anthropic/usage.hpp"
#include "protocol/openai/error.hpp"
#include "protocol/openai/sse.hpp"

namespace tc::anthropic {

/// Translates one Anthropic SSE stream, event by event, into the data payloads of the
/// equivalent OpenAI stream (the caller frames them with openai::sse_data and writes
/// openai::sse_done after status::done):
///   message_start        -> the first chunk, delta {"role":"assistant","content":""}
///   content_block_start  -> text: its text, if any; tool_use: a tool_calls delta with the
///                           call's index (0, 1, ... in stream order), id, name, arguments ""
///   content_block_delta  -> text_delta: content; input_json_delta: that call's arguments
///   message_delta        -> a chunk with the finish_reason (see finish_reason()); usage kept
///   message_stop         -> the finish chunk if none was sent, the usage chunk (empty
///                           choices) with include_usage; status::done
///   ping, content_block_stop, thinking/signature/citations deltas, server-tool blocks and
///   unknown events        -> nothing
///   error                -> status::failed, error() holds the mapped error and its message
/// A malformed event (not a JSON object, a content event before message_start, a tool_use
/// without id or name) fails the stream with a 502 upstream_error. With include_usage every
/// chunk carries "usage":null, as OpenAI's do.
class stream_translator {
 public:
  enum class status : uint8_t { more, done, failed };

  /// `model` is reported in every chunk; `created` is Unix seconds (pure code has no clock).
  stream_translator(std::string model, int64_t created, bool include_usage);

  /// Feeds one event (`event` is the SSE event field, may be empty; the data's "type" wins).
  /// Appends the chunk payloads to emit to `out`. After done or failed, feeds emit nothing.
  status feed(std::string_view event, std::string_view data, std::vector<std::string>& out);

  /// The state after the last feed.
  status state() const { return state_; }
  /// Why the stream failed (valid when state() is failed).
  const openai::api_error& error() const { return error_; }
  /// The usage reported so far (for billing whether or not the client asked for it).
  openai::usage usage() const;

 private:
  status fail(openai::api_error e);
  std::string chunk(std::string_view delta, std::string_view finish_reason = {}) const;

  std::string model_;
  int64_t created_;
  bool include_usage_;
  status state_ = status::more;
  bool started_ = false;
  bool finished_ = false;  ///< the finish_reason chunk was emitted
  std::string id_;
  anthropic::usage usage_;
  std::vector<int32_t> tool_of_block_;  ///< content block index -> tool call index, -1 if none
  int32_t next_tool_ = 0;
  openai::api_error error_;
};

}  // namespace tc::anthropic
