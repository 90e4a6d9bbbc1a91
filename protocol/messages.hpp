// Every message that crosses an actor boundary (or the bridge to an I/O loop), with its
// inspect(), and the project's single type-ID block: add_message_types(). Nothing here does work.
//
// Messages are plain structs of values (no pointers to shared memory), so CAF can send them to
// another node unchanged. CAF 0.17 fails at *send* time on an unregistered type, so every type
// listed here is sent through a real middleman connection by tests/protocol/messages.cpp.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/all.hpp>

#include "protocol/accounts/accounts.hpp"
#include "protocol/audit/record.hpp"
#include "protocol/billing/usage.hpp"
#include "protocol/canonical/hash.hpp"
#include "protocol/openai/error.hpp"
#include "protocol/openai/request.hpp"
#include "protocol/openai/sse.hpp"

namespace tc::openai {

/// CAF 0.17 has no std::optional support: optionals travel as (present, value) pairs.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, request& x) {
  bool has_temperature = x.temperature.has_value();
  double temperature = x.temperature.value_or(0.0);
  bool has_seed = x.seed.has_value();
  int64_t seed = x.seed.value_or(0);
  auto restore = caf::meta::load_callback([&]() -> caf::error {
    x.temperature = has_temperature ? std::optional<double>{temperature} : std::nullopt;
    x.seed = has_seed ? std::optional<int64_t>{seed} : std::nullopt;
    return caf::none;
  });
  return f(caf::meta::type_name("tc::openai::request"), x.kind, x.model, x.stream, x.include_usage,
           x.max_tokens, has_temperature, temperature, has_seed, seed, x.n, x.has_tools,
           x.message_count, x.input_chars, x.user, x.body, restore);
}

}  // namespace tc::openai

namespace tc {

/// Where the answer to one client request goes: the I/O loop that holds the client connection
/// and that loop's slot for the request.
struct reply_target {
  uint32_t loop = 0;
  uint64_t slot = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, reply_target& x) {
  return f(caf::meta::type_name("tc::reply_target"), x.loop, x.slot);
}

/// What the HTTP layer adds to a request: its id and the client's per-request cache controls.
/// request_meta::priority when the client sent no x-tc-priority.
constexpr uint8_t no_priority = 255;

struct request_meta {
  std::string request_id;    ///< x-request-id: the client's own if valid, else ours
  std::string record_id;     ///< always ours, unique: the usage record's idempotency key
  bool no_cache = false;     ///< Cache-Control: no-cache (answer fresh; the answer may be stored)
  bool no_store = false;     ///< Cache-Control: no-store (do not store the answer)
  uint32_t cache_ttl_s = 0;  ///< x-tc-cache-ttl; 0 = the model's TTL
  std::string api_key;       ///< the bearer token as sent (never logged, never forwarded)
  uint8_t priority = no_priority;  ///< x-tc-priority (0..4); no_priority: not sent
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, request_meta& x) {
  return f(caf::meta::type_name("tc::request_meta"), x.request_id, x.record_id, x.no_cache,
           x.no_store, x.cache_ttl_s, x.api_key, x.priority);
}

/// OpenAI's x-ratelimit-* values for one response (from the tightest limit of its scopes).
/// A limit of 0 means no such limit applies: those three headers are left out.
struct rate_headers {
  uint64_t limit_requests = 0;
  uint64_t remaining_requests = 0;
  uint32_t reset_requests_ms = 0;
  uint64_t limit_tokens = 0;
  uint64_t remaining_tokens = 0;
  uint32_t reset_tokens_ms = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, rate_headers& x) {
  return f(caf::meta::type_name("tc::rate_headers"), x.limit_requests, x.remaining_requests,
           x.reset_requests_ms, x.limit_tokens, x.remaining_tokens, x.reset_tokens_ms);
}

/// connection -> I/O loop: perform this upstream call and relay its answer to the client
/// (DESIGN §2 steps 10-12).
/// An endpoint to try next when the one before failed before the client got a byte: a connect
/// error, a timeout to the first byte, 5xx or 429 (issue 6, failover).
struct upstream_attempt {
  std::string provider;
  uint32_t endpoint = 0;       ///< pipeline endpoint index (health reports, load)
  uint16_t index = 0;          ///< in the model's endpoints: the outcome says which one served
  std::string url;             ///< as upstream_plan::url
  std::string upstream_model;  ///< the body's "model" for this endpoint
  uint32_t connect_timeout_ms = 0;
  uint32_t first_byte_timeout_ms = 0;
  uint32_t total_timeout_ms = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, upstream_attempt& x) {
  return f(caf::meta::type_name("tc::upstream_attempt"), x.provider, x.endpoint, x.index, x.url,
           x.upstream_model, x.connect_timeout_ms, x.first_byte_timeout_ms, x.total_timeout_ms);
}

struct upstream_plan {
  reply_target to;
  std::string provider;                     ///< provider name from config
  uint32_t endpoint = 0;                    ///< pipeline endpoint index of this first attempt
  uint16_t endpoint_index = 0;              ///< its index in the model's endpoints
  std::vector<upstream_attempt> fallbacks;  ///< the next endpoints, in order (may be empty)
  /// The router counted this call in its endpoint's in-flight load already (so concurrent
  /// decisions see it); the loop then does not count the first attempt again.
  bool in_flight_taken = false;
  std::string model;           ///< the model id the client asked for (metrics labels)
  std::string url;             ///< absolute upstream URL (sim://<provider>/... for sim)
  std::string upstream_model;  ///< the model name the first endpoint expects
  std::string body;            ///< the request body to send (model renamed if needed)
  bool stream = false;
  uint32_t connect_timeout_ms = 0;
  uint32_t first_byte_timeout_ms = 0;
  uint32_t total_timeout_ms = 0;
  bool capture = false;          ///< return the whole answer (non-stream form) in the outcome
  bool dedup_leader = false;     ///< followers may wait on it: a client leaving does not cancel it
  bool strip_usage = false;      ///< the body asks for stream usage the client did not ask for
  uint64_t cache_lookup_ns = 0;  ///< time the cache lookup took (0: no lookup)
  rate_headers rate;             ///< the x-ratelimit-* headers of the response
  /// Hold a complete answer's last bytes until its records are durable: `acks` calls of
  /// io_port::release send them (one per writer holding a record: the audit writer alone when
  /// it carries the usage record too, else the ledger's and the audit writer's).
  bool write_ahead = false;
  uint8_t acks = 1;
  bool moderate_output = false;  ///< step 11: check the answer (streams in windows) before release
  bool keep_output = false;      ///< return the answer's text in the outcome (audit)
  std::string filing_id;         ///< algorithm-filing ID for the header, body and first chunk
  std::string tenant;            ///< the caller's tenant (remote output engines are told)
  int64_t queue_ms = -1;         ///< step 8's wait, sent as x-tc-queue-ms; < 0: not queued
  /// Step 8 made the call already (prompt_array: one upstream call for several requests):
  /// `body` is this request's part of the answer, relayed as if the upstream had sent it.
  bool prefetched = false;
  uint64_t prefetched_ns = 0;  ///< how long that call took
  uint32_t merged = 0;         ///< requests that call answered (x-tc-batch)
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, upstream_plan& x) {
  return f(caf::meta::type_name("tc::upstream_plan"), x.to, x.provider, x.endpoint,
           x.endpoint_index, x.fallbacks, x.in_flight_taken, x.model, x.url, x.upstream_model,
           x.body, x.stream, x.connect_timeout_ms, x.first_byte_timeout_ms, x.total_timeout_ms,
           x.capture, x.dedup_leader, x.strip_usage, x.cache_lookup_ns, x.rate, x.write_ahead,
           x.acks, x.moderate_output, x.keep_output, x.filing_id, x.tenant, x.queue_ms,
           x.prefetched, x.prefetched_ns, x.merged);
}

/// connection -> I/O loop: answer the client from the cache (DESIGN §2 step 6). The port sends
/// one request_outcome back, like dispatch.
struct cached_reply {
  reply_target to;
  int status = 200;  ///< not 200 (dedup: the leader's error): `body` is the error, sent as JSON
  std::string model;
  std::string body;     ///< the stored non-stream JSON answer
  bool stream = false;  ///< send it as an SSE stream
  bool include_usage = false;
  std::string cache_header;    ///< the x-tc-cache value: hit-exact, hit-semantic;sim=0.97 ...
  std::string tier;            ///< metrics label: exact, template, semantic
  uint32_t prompt_tokens = 0;  ///< the original call's usage (saved tokens)
  uint32_t completion_tokens = 0;
  uint64_t saved_cost_micros = 0;  ///< what the original call cost
  uint64_t cache_lookup_ns = 0;
  rate_headers rate;
  bool write_ahead = false;  ///< as upstream_plan::write_ahead
  uint8_t acks = 1;
  bool keep_output = false;  ///< as upstream_plan::keep_output
  std::string filing_id;     ///< as upstream_plan::filing_id
  /// The stored answer's audit digest (cache_record::body_digest), when the audit keeps no text:
  /// served as stored, the answer needs no text kept to be audited.
  std::string body_digest;
  uint8_t body_digest_algo = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, cached_reply& x) {
  return f(caf::meta::type_name("tc::cached_reply"), x.to, x.status, x.model, x.body, x.stream,
           x.include_usage, x.cache_header, x.tier, x.prompt_tokens, x.completion_tokens,
           x.saved_cost_micros, x.cache_lookup_ns, x.rate, x.write_ahead, x.acks, x.keep_output,
           x.filing_id, x.body_digest, x.body_digest_algo);
}

/// How a request ended, as the I/O loop saw it. I/O loop -> connection, for settlement
/// (DESIGN §2 step 13).
struct request_outcome {
  int status = 0;                ///< HTTP status sent to the client
  openai::usage usage;           ///< as reported upstream, or counted
  bool usage_reported = false;   ///< usage came from the upstream (not estimated)
  bool client_gone = false;      ///< the client disconnected before the end
  bool stream_cut = false;       ///< a started stream ended with an error event
  std::string upstream_failure;  ///< transport failure name, empty if none
  uint64_t upstream_ns = 0;      ///< time spent in the upstream call
  uint64_t ttft_ns = 0;          ///< time from upstream start to its first byte
  uint64_t total_ns = 0;         ///< time from request received to last byte written
  std::string answer;  ///< with plan.capture: the complete answer in non-stream form, if any
  bool answer_cacheable = false;     ///< `answer` is complete, not truncated, not filtered
  std::string error_body;            ///< the error envelope (or upstream error body) the client got
  uint32_t completion_estimate = 0;  ///< tokens sent, estimated (used when usage_reported is false)
  /// The loop holds the answer's last bytes until io_port::release: the usage record must be
  /// durable first (write-ahead), or released at once if there is none to write.
  bool held = false;
  /// Step 11: each output engine's verdict (empty: not moderated); `filtered` the answer was
  /// cut or emptied with finish_reason content_filter.
  std::vector<audit::engine_verdict> output_verdicts;
  bool filtered = false;
  std::string output_text;  ///< plan.keep_output: the answer's text as the client got it
  /// Instead of output_text: its audit digest (audit::digest), made when the answer was stored
  /// in the cache, by the algorithm output_digest_algo names (audit::hash_algo).
  std::string output_digest;
  uint8_t output_digest_algo = 0;
  uint16_t endpoint_index = 0;  ///< the model's endpoint that answered last (billing, audit)
  uint8_t attempts = 0;         ///< upstream calls made (more than 1: failover)
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, request_outcome& x) {
  return f(caf::meta::type_name("tc::request_outcome"), x.status, x.usage, x.usage_reported,
           x.client_gone, x.stream_cut, x.upstream_failure, x.upstream_ns, x.ttft_ns, x.total_ns,
           x.answer, x.answer_cacheable, x.error_body, x.completion_estimate, x.held,
           x.output_verdicts, x.filtered, x.output_text, x.output_digest, x.output_digest_algo,
           x.endpoint_index, x.attempts);
}

// -- cache_shard (actors/cache_shard.hpp) ---------------------------------------------------

/// A cache lookup's answer. `found` false is a miss.
struct cache_hit {
  bool found = false;
  uint8_t tier = 0;             ///< actors::cache_tier
  float similarity = 1.0f;      ///< semantic hits: cosine similarity
  canonical::digest exact_key;  ///< template/semantic hits: where the answer is stored
  std::string body;             ///< exact hits: the answer
  uint32_t prompt_tokens = 0;
  uint32_t completion_tokens = 0;
  uint64_t cost_micros = 0;
  std::string body_digest;  ///< exact hits: cache_record::body_digest
  uint8_t body_digest_algo = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, cache_hit& x) {
  return f(caf::meta::type_name("tc::cache_hit"), x.found, x.tier, x.similarity, x.exact_key,
           x.body, x.prompt_tokens, x.completion_tokens, x.cost_micros, x.body_digest,
           x.body_digest_algo);
}

/// A template and semantic lookup in the shard that owns the namespace.
struct cache_probe {
  canonical::digest ns;
  canonical::digest template_key;  ///< empty: no template lookup
  std::vector<float> embedding;    ///< empty: no semantic lookup
  std::string guard;               ///< the query's guard (slots, entities, negation) as text
  float threshold = 0.95f;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, cache_probe& x) {
  return f(caf::meta::type_name("tc::cache_probe"), x.ns, x.template_key, x.embedding, x.guard,
           x.threshold);
}

/// An answer to store under its exact key (in the shard that owns that key).
struct cache_entry {
  canonical::digest key;
  canonical::digest ns;
  std::string scope;
  std::string model;
  std::string body;
  uint32_t prompt_tokens = 0;
  uint32_t completion_tokens = 0;
  uint64_t cost_micros = 0;
  uint32_t upstream_ms = 0;
  uint32_t ttl_s = 0;
  std::string body_digest;  ///< as cache_record::body_digest
  uint8_t body_digest_algo = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, cache_entry& x) {
  return f(caf::meta::type_name("tc::cache_entry"), x.key, x.ns, x.scope, x.model, x.body,
           x.prompt_tokens, x.completion_tokens, x.cost_micros, x.upstream_ms, x.ttl_s,
           x.body_digest, x.body_digest_algo);
}

/// The template and semantic pointers to a stored answer (in the shard that owns `ns`).
struct cache_link {
  canonical::digest ns;
  canonical::digest exact_key;
  canonical::digest template_key;  ///< empty: no template entry
  std::vector<float> embedding;    ///< empty: no semantic entry
  std::string guard;
  std::string scope;
  std::string model;
  uint64_t cost_micros = 0;
  uint32_t ttl_s = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, cache_link& x) {
  return f(caf::meta::type_name("tc::cache_link"), x.ns, x.exact_key, x.template_key, x.embedding,
           x.guard, x.scope, x.model, x.cost_micros, x.ttl_s);
}

/// Which entries an invalidation removes: all given fields must match; none given = all.
struct cache_filter {
  std::string scope;  ///< empty: any; else the scope, whatever residency rule follows it
  std::string model;
  canonical::digest ns;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, cache_filter& x) {
  return f(caf::meta::type_name("tc::cache_filter"), x.scope, x.model, x.ns);
}

/// One shard's table sizes and counters.
struct cache_stats {
  uint64_t entries = 0;  ///< exact, template and semantic records
  uint64_t bytes = 0;
  uint64_t evictions = 0;
  uint64_t expirations = 0;
  uint64_t semantic_entries = 0;
  uint64_t semantic_bytes = 0;             ///< vectors and graph links of the semantic indexes
  uint64_t namespaces = 0;                 ///< semantic indexes
  uint64_t semantic_skipped_searches = 0;  ///< over the shards' semantic budget (counters)
  uint64_t semantic_skipped_inserts = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, cache_stats& x) {
  return f(caf::meta::type_name("tc::cache_stats"), x.entries, x.bytes, x.evictions, x.expirations,
           x.semantic_entries, x.semantic_bytes, x.namespaces, x.semantic_skipped_searches,
           x.semantic_skipped_inserts);
}

// -- dedup_table (actors/dedup_table.hpp) --------------------------------------------------

/// dedup_table -> the leader's connection actor: a streaming follower wants the live chunks.
struct dedup_attach {
  canonical::digest key;
  caf::actor follower;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, dedup_attach& x) {
  return f(caf::meta::type_name("tc::dedup_attach"), x.key, x.follower);
}

/// The leader's answer, to every follower (leader -> dedup_table -> followers).
struct dedup_result {
  canonical::digest key;
  int status = 0;    ///< the leader's status; 0 = the leader was lost (followers go alone)
  std::string body;  ///< status 200: the answer in non-stream form; else the error envelope
  uint32_t prompt_tokens = 0;
  uint32_t completion_tokens = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, dedup_result& x) {
  return f(caf::meta::type_name("tc::dedup_result"), x.key, x.status, x.body, x.prompt_tokens,
           x.completion_tokens);
}

/// The leader's I/O loop -> a streaming follower: the stream's events so far or new ones.
struct dedup_events {
  canonical::digest key;
  std::vector<std::string> events;  ///< SSE data payloads, usage chunk included
  bool end = false;                 ///< the stream is over
  bool cut = false;                 ///< ... with an error (no [DONE])
  std::string error;                ///< the error envelope of a cut stream
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, dedup_events& x) {
  return f(caf::meta::type_name("tc::dedup_events"), x.key, x.events, x.end, x.cut, x.error);
}

/// A follower's connection actor -> its I/O loop: live chunks of the leader's stream.
struct follow_chunk {
  reply_target to;
  std::vector<std::string> events;
  bool include_usage = false;
  bool end = false;
  bool cut = false;
  std::string error;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, follow_chunk& x) {
  return f(caf::meta::type_name("tc::follow_chunk"), x.to, x.events, x.include_usage, x.end, x.cut,
           x.error);
}

/// I/O loop -> an actor: the answer to an HTTP call it asked for (io_port::call), e.g. a remote
/// moderation engine's verdict.
struct side_answer {
  uint64_t id = 0;      ///< the call's id, as given
  int status = 0;       ///< HTTP status; 0 when the call failed
  std::string body;     ///< the answer's body (bounded)
  std::string failure;  ///< transport failure (timeout, connect ...), empty if none
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, side_answer& x) {
  return f(caf::meta::type_name("tc::side_answer"), x.id, x.status, x.body, x.failure);
}

// -- provider_health (actors/provider_health.hpp, issue 6) -----------------------------------

/// I/O loop -> provider_health: how one upstream attempt to its endpoint ended.
struct health_report {
  uint8_t kind = 0;             ///< routing::outcome_kind
  double latency_ms = -1;       ///< the whole call; < 0 not measured
  double ttft_ms = -1;          ///< to the first byte; < 0 not measured
  uint32_t retry_after_ms = 0;  ///< a 429's Retry-After (0: none)
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, health_report& x) {
  return f(caf::meta::type_name("tc::health_report"), x.kind, x.latency_ms, x.ttft_ms,
           x.retry_after_ms);
}

/// I/O loop -> provider_health: the attempts to one endpoint that ended in one loop iteration,
/// in the order they ended. One message per endpoint per iteration, not one per request.
struct health_reports {
  std::vector<health_report> reports;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, health_reports& x) {
  return f(caf::meta::type_name("tc::health_reports"), x.reports);
}

// -- batcher (actors/batcher.hpp, issue 6) ---------------------------------------------------

/// connection -> batcher (step 8): hold this request until one of its endpoints has capacity.
/// Answered with one sched_grant.
struct sched_ask {
  uint64_t id = 0;       ///< unique among the model's requests in flight
  uint8_t priority = 2;  ///< 0 (P0, strict) .. 4
  std::string tenant;    ///< the round-robin unit within a priority
  uint32_t tokens = 1;   ///< estimated prompt + completion tokens (queue share, token bucket)
  /// The model's endpoints (indices in the model) in the router's order (step 9): the first
  /// with capacity is granted.
  std::vector<uint16_t> order;
  /// prompt_array: requests with the same non-zero key may go upstream as one call
  /// (protocol/scheduling/prompt_array). 0: this request goes alone.
  uint64_t merge_key = 0;
  std::string merge_body;     ///< its body as it would go upstream (the model not renamed yet)
  std::string merge_prompt;   ///< its prompt, a JSON string literal
  uint32_t merge_weight = 1;  ///< its prompt's estimated tokens (the usage split)
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, sched_ask& x) {
  return f(caf::meta::type_name("tc::sched_ask"), x.id, x.priority, x.tenant, x.tokens, x.order,
           x.merge_key, x.merge_body, x.merge_prompt, x.merge_weight);
}

/// sched_grant::refused values.
constexpr uint8_t sched_granted = 0;
constexpr uint8_t sched_queue_full = 1;
constexpr uint8_t sched_queue_timeout = 2;
constexpr uint8_t sched_cancelled = 3;  ///< its client went away while it was queued

/// batcher -> connection: dispatch now, at `order[0]` (a slot there is held for the request
/// until its sched_done), or refused.
struct sched_grant {
  uint8_t refused = sched_granted;
  uint32_t retry_after_s = 0;   ///< refused: when to try again
  std::vector<uint16_t> order;  ///< the ask's order with the granted endpoint first
  uint64_t waited_us = 0;       ///< time in the queue
  uint32_t batch = 0;           ///< requests released with it (itself included)
  /// prompt_array: the batcher called order[0] for this request and others at once; this is
  /// the request's part of the answer (empty: the request makes its own call).
  std::string answer;
  uint64_t upstream_us = 0;  ///< how long the merged call took
  uint32_t merged = 0;       ///< requests in the merged call
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, sched_grant& x) {
  return f(caf::meta::type_name("tc::sched_grant"), x.refused, x.retry_after_s, x.order,
           x.waited_us, x.batch, x.answer, x.upstream_us, x.merged);
}

/// connection -> batcher: the granted request ended; its slot is free and its reservation is
/// settled to the tokens it used.
struct sched_done {
  uint64_t id = 0;
  uint32_t used_tokens = 0;  ///< prompt + completion as billed
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, sched_done& x) {
  return f(caf::meta::type_name("tc::sched_done"), x.id, x.used_tokens);
}

/// connection -> batcher: the client of request `id` went away; if it is still queued it leaves
/// the queue (answered sched_cancelled), if it was granted its sched_done follows as usual.
struct sched_cancel {
  uint64_t id = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, sched_cancel& x) {
  return f(caf::meta::type_name("tc::sched_cancel"), x.id);
}

// -- embedder (actors/embedder.hpp, issue 3) ------------------------------------------------

/// connection -> embedder (step 6, cache.embedder = "openai"): the embedding of one query text.
/// Answered with one embed_answer.
struct embed_ask {
  std::string text;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, embed_ask& x) {
  return f(caf::meta::type_name("tc::embed_ask"), x.text);
}

/// embedder -> connection: the text's unit-length embedding (cache.embedding_dim floats), or why
/// there is none (`error` non-empty, `embedding` empty): the semantic tier is skipped.
struct embed_answer {
  std::vector<float> embedding;
  std::string error;  ///< "": ok; else e.g. overloaded, too_long, timeout, status_503, dimension
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, embed_answer& x) {
  return f(caf::meta::type_name("tc::embed_answer"), x.embedding, x.error);
}

// -- accounts, tenant_quota, ledger (issue 4) -----------------------------------------------

}  // namespace tc

namespace tc::accounts {

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, limits& x) {
  return f(caf::meta::type_name("tc::accounts::limits"), x.rpm, x.rpd, x.tpm, x.max_concurrent,
           x.burst_pct, x.daily_budget, x.monthly_budget, x.soft_budget);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, tenant& x) {
  return f(caf::meta::type_name("tc::accounts::tenant"), x.id, x.name, x.currency, x.price_factor,
           x.cache_scope, x.filing_id, x.priority, x.residency_regions, x.residency_tags, x.limit,
           x.model_limits, x.disabled, x.created_at);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, project& x) {
  return f(caf::meta::type_name("tc::accounts::project"), x.tenant, x.id, x.name, x.limit,
           x.created_at);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, api_key& x) {
  return f(caf::meta::type_name("tc::accounts::api_key"), x.id, x.tenant, x.project, x.environment,
           x.name, x.prefix, x.hash, x.created_at, x.expires_at, x.revoked_at, x.replaced_by,
           x.grace_until, x.allowed_models, x.allowed_endpoints, x.priority, x.max_priority,
           x.limit);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, admin_token& x) {
  auto level = static_cast<uint8_t>(x.level);
  auto restore = caf::meta::load_callback([&]() -> caf::error {
    x.level = static_cast<role>(level > 2 ? 0 : level);
    return caf::none;
  });
  return f(caf::meta::type_name("tc::accounts::admin_token"), x.id, x.name, level, x.prefix, x.hash,
           x.created_at, x.revoked_at, restore);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, price& x) {
  return f(caf::meta::type_name("tc::accounts::price"), x.provider, x.model, x.input_per_m,
           x.cached_input_per_m, x.output_per_m, x.currency);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, model_split& x) {
  return f(caf::meta::type_name("tc::accounts::model_split"), x.group, x.weights, x.updated_at);
}

}  // namespace tc::accounts

namespace tc::billing {

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, usage_record& x) {
  auto result = static_cast<uint8_t>(x.result);
  auto restore = caf::meta::load_callback([&]() -> caf::error {
    x.result = static_cast<outcome>(result > 6 ? 0 : result);
    return caf::none;
  });
  return f(caf::meta::type_name("tc::billing::usage_record"), x.request_id, x.ts_ms, x.tenant,
           x.project, x.key, x.model, x.provider, x.endpoint, x.status, result, x.prompt_tokens,
           x.cached_tokens, x.completion_tokens, x.estimated, x.cost_micros, x.cost_currency,
           x.charged_micros, x.charged_currency, x.saved_micros, x.client_request_id, restore);
}

}  // namespace tc::billing

// -- audit_writer (actors/audit_writer.hpp) -------------------------------------------------

namespace tc::audit {

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, engine_verdict& x) {
  return f(caf::meta::type_name("tc::audit::engine_verdict"), x.engine, x.verdict, x.category,
           x.latency_us);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, audit_record& x) {
  return f(caf::meta::type_name("tc::audit::audit_record"), x.seq, x.node, x.request_id, x.ts_ms,
           x.tenant, x.project, x.key_id, x.model, x.provider, x.endpoint, x.status,
           x.prompt_tokens, x.completion_tokens, x.cost_micros, x.cost_currency, x.latency_ms,
           x.input_verdicts, x.output_verdicts, x.input_digest, x.output_digest, x.text_encrypted,
           x.input_text, x.output_text, x.prev_hash, x.hash);
}

}  // namespace tc::audit

namespace tc {

/// A change to the account tables, admin -> accounts actor (the tables' one writer).
struct accounts_op {
  enum kind : uint8_t {
    create_tenant,
    update_tenant,
    delete_tenant,
    create_project,
    update_project,
    delete_project,
    create_key,
    update_key,
    revoke_key,
    rotate_key,
    create_admin_token,
    revoke_admin_token,
    put_price,
    delete_price,
    put_split,
    delete_split,
  };
  uint8_t op = 0;
  accounts::tenant tenant;
  accounts::project project;
  accounts::api_key key;
  accounts::admin_token admin;
  accounts::price price;
  accounts::model_split split;
  std::string id;       ///< the object's id for deletes, revokes and rotations
  int64_t grace_s = 0;  ///< rotate_key: how long the old key keeps working
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, accounts_op& x) {
  return f(caf::meta::type_name("tc::accounts_op"), x.op, x.tenant, x.project, x.key, x.admin,
           x.price, x.split, x.id, x.grace_s);
}

/// The accounts actor's answer to an accounts_op.
struct accounts_result {
  int status = 200;     ///< 200, 201, 404 (no such object), 409 (exists, or in use), 503 (store)
  std::string message;  ///< why, when not 2xx
  std::string param;
  std::string json;    ///< the object after the change (accounts::to_json)
  std::string secret;  ///< create_key, rotate_key, create_admin_token: shown once
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, accounts_result& x) {
  return f(caf::meta::type_name("tc::accounts_result"), x.status, x.message, x.param, x.json,
           x.secret);
}

// -- tenant_quota (actors/tenant_quota.hpp) -------------------------------------------------

/// One scope a request counts against, with the limits that apply to it now. Limits travel
/// with every request (from the node's replicated directory), so the book holds counters only.
struct quota_scope {
  std::string id;  ///< unique over all scopes: "t:acme", "p:acme/web", "k:key_..", "m:acme/gpt-4*"
  accounts::limits limit;
};

/// Admission of one request: every scope is checked, and only if all admit is anything reserved.
struct quota_ask {
  std::vector<quota_scope> scopes;  ///< tenant first; empty limits still count usage
  uint64_t tokens = 0;              ///< estimated input + output tokens to reserve against tpm
  int64_t cost_micros = 0;          ///< estimated charge (tenant currency, 1e-6 units) to hold
};

/// The answer to a quota_ask.
struct quota_verdict {
  bool granted = false;
  uint64_t ticket = 0;          ///< granted: give it back to settle()
  int status = 0;               ///< denied: 429
  std::string code;             ///< denied: rate_limit_exceeded | insufficient_quota
  std::string message;          ///< denied: which limit of which scope, for people
  uint32_t retry_after_s = 0;   ///< denied: when a retry can succeed (at least 1)
  bool budget_warning = false;  ///< granted over a soft budget (under 120% of it)
  // OpenAI's x-ratelimit-* values from the tightest request and token limits over all scopes,
  // after this request; limit 0 = no such limit applies (the headers are left out).
  uint64_t limit_requests = 0;
  uint64_t remaining_requests = 0;
  uint32_t reset_requests_ms = 0;  ///< until the window has room for one more request
  uint64_t limit_tokens = 0;
  uint64_t remaining_tokens = 0;
  uint32_t reset_tokens_ms = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, quota_scope& x) {
  return f(caf::meta::type_name("tc::quota_scope"), x.id, x.limit);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, quota_ask& x) {
  return f(caf::meta::type_name("tc::quota_ask"), x.scopes, x.tokens, x.cost_micros);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, quota_verdict& x) {
  return f(caf::meta::type_name("tc::quota_verdict"), x.granted, x.ticket, x.status, x.code,
           x.message, x.retry_after_s, x.budget_warning, x.limit_requests, x.remaining_requests,
           x.reset_requests_ms, x.limit_tokens, x.remaining_tokens, x.reset_tokens_ms);
}

/// The single type-ID block: registers every message type with the actor system.
inline void add_message_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<openai::request>("tc::openai::request");
  cfg.add_message_type<openai::api_error>("tc::openai::api_error");
  cfg.add_message_type<openai::usage>("tc::openai::usage");
  cfg.add_message_type<reply_target>("tc::reply_target");
  cfg.add_message_type<request_meta>("tc::request_meta");
  cfg.add_message_type<upstream_attempt>("tc::upstream_attempt");
  cfg.add_message_type<upstream_plan>("tc::upstream_plan");
  cfg.add_message_type<cached_reply>("tc::cached_reply");
  cfg.add_message_type<request_outcome>("tc::request_outcome");
  cfg.add_message_type<canonical::digest>("tc::canonical::digest");
  cfg.add_message_type<cache_hit>("tc::cache_hit");
  cfg.add_message_type<cache_probe>("tc::cache_probe");
  cfg.add_message_type<cache_entry>("tc::cache_entry");
  cfg.add_message_type<cache_link>("tc::cache_link");
  cfg.add_message_type<cache_filter>("tc::cache_filter");
  cfg.add_message_type<cache_stats>("tc::cache_stats");
  cfg.add_message_type<dedup_attach>("tc::dedup_attach");
  cfg.add_message_type<dedup_result>("tc::dedup_result");
  cfg.add_message_type<dedup_events>("tc::dedup_events");
  cfg.add_message_type<follow_chunk>("tc::follow_chunk");
  cfg.add_message_type<side_answer>("tc::side_answer");
  cfg.add_message_type<health_report>("tc::health_report");
  cfg.add_message_type<health_reports>("tc::health_reports");
  cfg.add_message_type<sched_ask>("tc::sched_ask");
  cfg.add_message_type<sched_grant>("tc::sched_grant");
  cfg.add_message_type<sched_done>("tc::sched_done");
  cfg.add_message_type<sched_cancel>("tc::sched_cancel");
  cfg.add_message_type<embed_ask>("tc::embed_ask");
  cfg.add_message_type<embed_answer>("tc::embed_answer");
  cfg.add_message_type<rate_headers>("tc::rate_headers");
  cfg.add_message_type<accounts::limits>("tc::accounts::limits");
  cfg.add_message_type<accounts::tenant>("tc::accounts::tenant");
  cfg.add_message_type<accounts::project>("tc::accounts::project");
  cfg.add_message_type<accounts::api_key>("tc::accounts::api_key");
  cfg.add_message_type<accounts::admin_token>("tc::accounts::admin_token");
  cfg.add_message_type<accounts::price>("tc::accounts::price");
  cfg.add_message_type<accounts::model_split>("tc::accounts::model_split");
  cfg.add_message_type<billing::usage_record>("tc::billing::usage_record");
  cfg.add_message_type<audit::engine_verdict>("tc::audit::engine_verdict");
  cfg.add_message_type<audit::audit_record>("tc::audit::audit_record");
  cfg.add_message_type<accounts_op>("tc::accounts_op");
  cfg.add_message_type<accounts_result>("tc::accounts_result");
  cfg.add_message_type<quota_scope>("tc::quota_scope");
  cfg.add_message_type<quota_ask>("tc::quota_ask");
  cfg.add_message_type<quota_verdict>("tc::quota_verdict");
}

}  // namespace tc
