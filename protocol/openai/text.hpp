// The text in OpenAI bodies that moderation reads and may rewrite (issue 5), and the filing-ID
// stamp: requests (chat messages, completion prompts, embedding inputs), non-stream answers,
// stream chunks.
//
// Extraction decodes JSON escapes; an invalid UTF-8 byte or a lone surrogate escape becomes
// U+FFFD, so a moderator always gets valid UTF-8. Rewrites are byte surgery: only the replaced
// string values change, every other byte of the body (numbers, key order, unknown fields,
// whitespace) stays as it was. Bodies are scanned, not validated: on malformed JSON the
// functions find what they can before the first malformed byte and never read out of bounds,
// recurse on the input or throw. A rewrite touches exactly the values its extraction returned.
// Duplicate keys (parsers disagree on which one wins) are all read and all rewritten.
// Pure; any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/openai/request.hpp"

namespace tc::openai {

/// The texts a moderator must see in a request, in document order. Chat: each message's
/// `content` string, each `{"type":"text","text":...}` content part's text, and each
/// `tool_calls[].function.arguments`; completions: `prompt` as a string or each string of an
/// array (token arrays skipped); embeddings: `input` likewise. Best effort; never throws.
std::vector<std::string> input_texts(endpoint kind, std::string_view body);

/// `body` with the i-th text of input_texts(kind, body) replaced by `texts[i]` (texts equal to
/// the original keep their original bytes). `body` unchanged if the counts differ.
std::string with_input_texts(endpoint kind, std::string_view body,
                             const std::vector<std::string>& texts);

/// A non-stream answer's text per element of `choices`, in array order: chat.completion
/// `message.content`, text_completion `text` ("" when null, missing, or not an object). The
/// kind comes from "object", else from each choice's shape ("message" present -> chat).
std::vector<std::string> answer_texts(std::string_view body);

/// `body` with choice i's content/text replaced by `texts[i]` (a null or missing one is set
/// only if `texts[i]` is not empty) and, if `finish_reason` is not empty, every choice's
/// finish_reason set to it. Other fields, usage included, are kept. `body` unchanged if the
/// number of choices is not texts.size().
std::string with_answer_texts(std::string_view body, const std::vector<std::string>& texts,
                              std::string_view finish_reason);

/// The text one choice adds in one stream chunk.
struct delta_piece {
  uint32_t index = 0;  ///< the choice's "index" (its array position if absent or invalid)
  std::string text;

  friend bool operator==(const delta_piece&, const delta_piece&) = default;
};

/// The non-empty text each choice adds in one stream chunk (the JSON `data:` payload of a
/// chat.completion.chunk or a streamed text_completion): `delta.content`, or `text`. Empty for
/// role-only, finish and usage chunks and for anything that is not a chunk.
std::vector<delta_piece> delta_texts(std::string_view event);

/// `event` with the delta text of each choice named by a piece replaced by the piece's text
/// (pieces naming one index are concatenated; indexes not in the chunk are ignored). A choice
/// without delta text gets one if its piece is not empty.
std::string with_delta_texts(std::string_view event, const std::vector<delta_piece>& pieces);

/// A chunk that ends a stream as filtered: id, object, created, model and system_fingerprint
/// from `last_event` (any chunk of the stream; defaults "", "chat.completion.chunk", 0, "" and
/// no fingerprint), and for each index below `choices` (at most 128)
/// `{"index":i,"delta":{},"finish_reason":"content_filter"}`, or for text_completion streams
/// `{"index":i,"text":"","finish_reason":"content_filter"}`.
std::string content_filter_chunk(std::string_view last_event, uint32_t choices);

/// `json_object` with `"name":"value"` (both JSON-escaped) inserted as its first member, right
/// after the opening brace, without parsing the rest. Unchanged if the text (after leading
/// whitespace) does not start with `{` followed by more than whitespace. Runs on every response
/// and first stream chunk when a filing ID is configured: one allocation, one copy.
std::string with_top_field(std::string_view json_object, std::string_view name,
                           std::string_view string_value);

}  // namespace tc::openai
