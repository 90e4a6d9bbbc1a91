// prompt_array dispatch (issue 6, DESIGN §2 step 8): single-prompt /v1/completions requests
// that differ only in their prompt are sent upstream as one call whose `prompt` is the list of
// their prompts (vLLM and other OpenAI-compatible servers answer one choice per prompt, choice
// index = prompt index), and the answer is split back into one text_completion per request.
// Pure; any thread.
//
// Usage: the upstream reports one usage for the whole call. Each request gets a share of it,
// by weight (its prompt's estimated tokens for prompt_tokens and cached_tokens, its choice's
// estimated tokens for completion_tokens), rounded by largest remainder so that the shares add
// up exactly to what the upstream reported: nothing is billed twice and nothing is lost. With
// one request per call the share is the whole.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/openai/sse.hpp"

namespace tc::scheduling {

/// A completions body that can be merged, and with which others.
struct mergeable_prompt {
  uint64_t key = 0;     ///< equal for bodies equal in every top-level member but prompt and user
  std::string prompt;   ///< the prompt, as the JSON string literal it was in the body
  uint32_t weight = 1;  ///< its estimated tokens (the usage split), at least 1
};

/// Whether a validated /v1/completions `body` can be merged: not streamed, one prompt that is
/// a string (or an array of one string), `n` and `best_of` absent or 1. The key covers every
/// other top-level member as canonical JSON (sorted keys, one number format), so only requests
/// that would be sampled alike merge.
bool mergeable_completion(std::string_view body, mergeable_prompt& out);

/// The body of the one upstream call: `member_body` (any of the merged requests) with its
/// prompt replaced by the list of `prompts` (JSON string literals, in order) and without
/// `user` (it names one caller only). Empty if `member_body` is not a JSON object.
std::string merged_body(std::string_view member_body, const std::vector<std::string>& prompts);

/// One request's part of a merged answer.
struct split_part {
  std::string body;             ///< a complete text_completion with one choice (index 0)
  openai::usage usage;          ///< its share of the call's usage
  bool usage_reported = false;  ///< the upstream reported usage (else `usage` is zero)
};

/// Splits the answer of a merged call for `weights.size()` prompts (their weights, in order):
/// part i has choice i, the answer's other members (its id suffixed with "-i", so each request
/// has an id of its own) and its usage share. False, with `error`, when the answer is not a
/// JSON object with exactly one choice per prompt (indices 0..k-1, each once).
bool split_answer(std::string_view answer, const std::vector<uint32_t>& weights,
                  std::vector<split_part>& out, std::string& error);

/// `total` divided in proportion to `weights` (all zero: equal), by largest remainder: the
/// parts add up to `total` exactly. Ties go to the earlier index.
std::vector<uint32_t> share(uint32_t total, const std::vector<uint32_t>& weights);

}  // namespace tc::scheduling
