// Converting between the two forms of one answer (issue 3: a cached or coalesced answer serves
// both stream and non-stream clients):
//   stream_assembler   the data payloads of a chat.completion.chunk (or streamed
//                      text_completion) SSE stream -> the equivalent non-stream JSON
//   synthesize_stream  a stored non-stream JSON -> the SSE events a stream client expects
// plus the body surgery that makes every upstream stream report its usage. Pure; any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace tc::openai {

/// Builds the non-stream response of a stream, event by event.
/// Chat: "object":"chat.completion", with id/created/model/system_fingerprint from the chunks,
/// each choice (by index) with message.role, message.content (deltas concatenated; null if the
/// stream had none), message.tool_calls (by index: id, type, function.name, function.arguments
/// concatenated), message.refusal if any, logprobs if any (content entries concatenated),
/// finish_reason; and "usage" from the usage chunk. Text completions: "object":"text_completion",
/// choices[].text concatenated, finish_reason, usage.
class stream_assembler {
 public:
  /// Feeds one event's data payload (not "[DONE]"). False if it is not a JSON object of a
  /// chunk; the assembler is then failed and stays so.
  bool feed(std::string_view data);
  /// True once every choice seen has a finish_reason and a usage was seen.
  bool complete() const;
  /// True if any choice finished with "content_filter" or "length" (never cached).
  bool filtered_or_truncated() const;
  /// The assembled JSON (compact). Valid only if complete() and not failed.
  std::string result() const;
  bool failed() const { return failed_; }

  ~stream_assembler();
  stream_assembler();
  stream_assembler(stream_assembler&&) noexcept;
  stream_assembler& operator=(stream_assembler&&) noexcept;

 private:
  struct state;
  state* st_;
  bool failed_ = false;
};

/// The SSE events ("data: {...}\n\n" ... "data: [DONE]\n\n") of a stream equivalent to the
/// non-stream `response` (chat.completion or text_completion). Chat: per choice, a first chunk
/// with the role, content in pieces of at most `piece_chars` bytes (split at UTF-8 boundaries),
/// tool_calls, then a chunk with finish_reason; with include_usage, every chunk carries
/// "usage":null and a final chunk with empty choices carries the usage. Empty string if
/// `response` is not such a JSON object.
std::string synthesize_stream(std::string_view response, bool include_usage,
                              uint32_t piece_chars = 64);

/// `body` (a streamed request's JSON object) with stream_options.include_usage set to true,
/// other bytes unchanged where possible. Returns `body` unchanged if it already is.
std::string with_stream_usage(std::string_view body);

/// True for the usage-only chunk of a stream: "choices" is an empty array and "usage" is an
/// object. Relayed only to clients that asked for include_usage.
bool is_usage_chunk(std::string_view data);

}  // namespace tc::openai
