// Remote moderation engines (issue 5): the `http` and `openai` engines' request bodies and answer
// parsers, and the aggregation of several engines' verdicts by policy. Pure functions, no I/O:
// the node's I/O loop performs the calls and hands the answer bodies here. Any thread.
//
// ---- The `http` engine contract (a generic webhook) ---------------------------------------
//
// The gateway POSTs one JSON object per check (Content-Type: application/json):
//
//   {"direction":"input","request_id":"req-7f3a","tenant":"acme","model":"qwen-max",
//    "texts":["first text","second text"]}
//
//   direction   "input" (what the client sent) or "output" (what the model answered)
//   request_id  the request's x-request-id
//   tenant      the tenant the request belongs to
//   model       the model the client asked for
//   texts       the texts to judge, in order; hits refer to them by index. Texts are UTF-8;
//               an invalid byte (never expected) is sent as U+FFFD so the body is always JSON.
//
// The service answers 200 with one JSON object:
//
//   {"verdict":"mask","category":"pii",
//    "hits":[{"text":0,"begin":3,"end":14,"category":"pii.phone","action":"mask"}]}
//
//   verdict   required; "allow" | "flag" | "mask" | "block" (exactly these, lower case)
//   category  optional string (at most 256 bytes of UTF-8), why: recorded in the audit trail
//             and shown in the content_filter error
//   hits      optional array of findings:
//     text      required; index into the request's texts (an integer, 0-based)
//     begin,end required; byte offsets into texts[text], begin < end <= its length, both on
//               UTF-8 code point boundaries
//     category  optional string (at most 256 bytes); defaults to the top-level category
//     action    optional "allow" | "flag" | "mask" | "block"; defaults to the verdict
//   A null category or hits counts as absent; other members are ignored (room to grow).
//
// How the answer is read:
//   - The verdict is at least the strongest hit's action: a hit stronger than the verdict
//     (say a `block` hit under `flag`) raises it, and the first such hit listed gives the
//     category. Hits never lower a verdict.
//   - A `mask` verdict needs something to mask: with no hit whose action is `mask` it is
//     treated as `block`.
//   - The gateway replaces every `mask` hit's bytes with one '*' per code point; other hits
//     only explain the verdict.
//   - Anything else (not JSON, an unknown verdict, a wrong type, a text index or an offset out
//     of range or inside a code point) makes the answer invalid: the engine counts as failed,
//     exactly like a timeout or a non-2xx status (see `engine_result::fail_closed`).
//
// ---- The `openai` engine --------------------------------------------------------------------
//
// Any endpoint compatible with OpenAI's POST /v1/moderations: the request is
// {"model":"...","input":["...", ...]}, the answer one result per input text with boolean
// `categories`. Each category that is true gets its configured action (`category_actions`,
// keyed by OpenAI's names such as "violence" or "sexual/minors"), or `flagged_action` when not
// configured; a result with `flagged: true` and no true category gets `flagged_action`. The
// strongest wins. A true category counts even when `flagged` is false, and one configured as
// `allow` is ignored (the way to switch a category off). This API gives no offsets, so there is
// nothing to mask: a `mask` decision becomes `block`.
//
// ---- Aggregation ------------------------------------------------------------------------------
//
// The moderator runs its engines in parallel and combines their actions by `policy`; see
// `aggregate`. Whatever the aggregate, the caller applies every engine's `mask` hits to the text
// it lets through (a mask from one engine is never outvoted by others that saw nothing).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/moderation/moderation.hpp"

namespace tc::moderation {

/// One remote engine's answer for one check.
struct remote_verdict {
  action act = action::allow;
  std::string category;                ///< what decided act (may be empty)
  std::vector<std::vector<hit>> hits;  ///< per text, ordered by (begin, end); may be empty
};

/// The `http` engine's request body (see the contract above). Never fails.
std::string http_request_body(std::string_view direction, std::string_view request_id,
                              std::string_view tenant, std::string_view model,
                              const std::vector<std::string>& texts);

/// Reads an `http` engine answer to a request that carried `texts`. On success fills `out`
/// (hits has one entry per text); on failure returns false with `error` saying what and where,
/// and leaves `out` unchanged. The caller bounds the body's size.
bool parse_http_verdict(std::string_view body, const std::vector<std::string>& texts,
                        remote_verdict& out, std::string& error);

/// {"model":model,"input":[texts...]} for POST /v1/moderations; model left out when empty.
std::string openai_moderation_body(std::string_view model, const std::vector<std::string>& texts);

/// Reads a /v1/moderations answer to a request of `texts` inputs: exactly that many results,
/// each with a boolean `flagged` and an object `categories` of booleans (`category_scores` and
/// other members are ignored). Verdict as described above; out.category is the category that
/// decided: the first, over results in input order and each result's categories in byte order,
/// whose action is the final one (empty when a bare `flagged` decided or the verdict is allow).
/// out.hits has one empty entry per text. False with `error` on anything else (including an
/// error envelope), `out` unchanged.
bool parse_openai_moderation(std::string_view body, size_t texts,
                             const std::map<std::string, action>& category_actions,
                             action flagged_action, remote_verdict& out, std::string& error);

/// How several engines' actions combine into one.
enum class policy : uint8_t { any_block, majority, weighted };
/// "any_block" | "majority" | "weighted".
std::string_view policy_name(policy p);
/// The inverse of policy_name; false (and `out` unchanged) for anything else.
bool parse_policy(std::string_view name, policy& out);

/// One engine's outcome for one check, as the moderator gathered it.
struct engine_result {
  std::string engine;  ///< configured engine name
  action act = action::allow;
  std::string category;  ///< why; for a failed engine, whatever the caller records (e.g. "timeout")
  double weight = 1.0;   ///< weighted policy only; negative or non-finite counts as 0
  bool failed = false;   ///< error, timeout or invalid answer: `act` is not used
  bool fail_closed = false;  ///< a failed engine then counts as a block vote, else it is left out
};

/// Combines engine results. The counted engines are those that did not fail, plus failed ones
/// with fail_closed (as block). No counted engine: allow.
///   any_block  the strongest action of all counted engines.
///   majority   block if more than half of the counted engines say block; otherwise the
///              strongest of the counted non-block actions (mask beats flag beats allow).
///   weighted   block if at least one block voter has positive weight and (block voters'
///              weight) / (counted engines' weight) >= block_threshold; otherwise the strongest
///              non-block action, as in majority. (Config keeps block_threshold in (0, 1];
///              a NaN never blocks.)
/// `deciding_category` = the category of the first counted engine (in `r`'s order) whose action
/// is the result (empty for no counted engine). Mask hits apply whatever the result (see above).
action aggregate(policy p, const std::vector<engine_result>& r, double block_threshold,
                 std::string& deciding_category);

}  // namespace tc::moderation
