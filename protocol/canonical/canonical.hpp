// The canonical form of a request, and the keys derived from it (DESIGN §2 step 5): the cache
// and dedup keys. Four stages, each a function here:
//   chunk        split the request into system, tools, history and query blocks
//   arrange      order them system -> tools sorted by function name -> history -> query
//   canonicalize deterministic JSON: sorted object keys, one number format, no insignificant
//                whitespace; message text is left untouched
//   hash         full_hash, prefix_hash and the semantic namespace inputs
// Pure; any thread. Input is a request already validated by openai::parse_request.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/canonical/hash.hpp"
#include "protocol/openai/request.hpp"

namespace tc::canonical {

/// Top-level request fields that never change the output, so never count in any hash.
/// Everything else counts, including fields this gateway does not know.
/// (stream, stream_options, user, metadata, store, service_tier, prompt_cache_key,
///  safety_identifier.)
const std::vector<std::string_view>& ignored_fields();

/// A request split into blocks, each a canonical JSON text (sorted keys, one number format).
struct blocks {
  std::vector<std::string> system;   ///< leading system/developer messages, in order
  std::vector<std::string> tools;    ///< `tools` entries, sorted by function name
  std::vector<std::string> history;  ///< messages after the system block, before the query
  std::string query_message;         ///< the final message (chat), or the prompt/input
  std::string query_text;  ///< its plain text: string content, or text parts joined by "\n";
                           ///< empty if it has any non-text part (image, audio, file)
  std::string params;      ///< canonical JSON object of every other counted field (model excluded)
};

/// Step 1 and 2: chunk and arrange. False (with `error`) only if the body is not a JSON object,
/// which a validated request never is.
bool chunk(const openai::request& req, blocks& out, std::string& error);

/// Deterministic JSON text of any JSON value: object keys sorted by bytes, numbers in one
/// format (integral values within +-2^53 as integers, others as shortest round-trip doubles),
/// strings re-escaped minimally, no whitespace. False if `json` is not valid JSON.
bool canonical_json(std::string_view json, std::string& out);

/// What the cache and dedup tables key on.
struct key {
  digest full_hash;     ///< scope, endpoint, model, model version and every counted field
  digest prefix_hash;   ///< system block + tools (empty input hashes to a fixed value)
  digest params_hash;   ///< endpoint, model, model version and `params` (no messages, no tools)
  digest history_hash;  ///< the history block
  /// The semantic/template namespace: scope, model, version, prefix_hash, params_hash.
  digest namespace_hash;
  std::string query_text;      ///< for the template and semantic tiers
  bool single_turn = true;     ///< no history block
  bool deterministic = false;  ///< temperature 0, or a seed given
};

/// Whether the request asks for a repeatable answer: temperature 0, or a seed given (what
/// key::deterministic says, without making the key).
bool deterministic(const openai::request& req);

/// Step 5 in full. `scope` is the cache scope (a tenant id, or a declared shared scope name);
/// `model_version` is the configured version of the model (bumping it changes every key).
/// A call with the same body bytes, endpoint, model, scope and version as a recent one on the
/// same thread copies that call's key (protocol/memo.hpp: 64 keys per thread, bodies up to 4 KB).
bool make_key(const openai::request& req, std::string_view scope, std::string_view model_version,
              key& out, std::string& error);

}  // namespace tc::canonical
