// The connection actor: one per client request in flight. It runs the request pipeline of
// DESIGN §2 in one place, from auth to settlement. It never touches a socket: the answer leaves
// through an io_port (the node's I/O loop that holds the client connection).
//
// An actor serves one request at a time and is reused for the next one once it has settled:
// CAF 0.17 wakes its clock thread on every actor termination (local_actor::cleanup cancels
// timeouts unconditionally), which measured as one extra context switch per request.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <caf/all.hpp>

#include "actors/accounts.hpp"
#include "actors/cache_shard.hpp"
#include "actors/moderator.hpp"
#include "actors/provider_health.hpp"
#include "protocol/audit/record.hpp"
#include "protocol/canonical/canonical.hpp"
#include "protocol/canonical/embed.hpp"
#include "protocol/messages.hpp"
#include "protocol/routing/affinity.hpp"
#include "protocol/routing/auto_model.hpp"
#include "protocol/routing/router.hpp"
#include "protocol/routing/split.hpp"
#include "protocol/scheduling/context.hpp"

namespace tc::actors {

class batcher_gate;  // actors/batcher.hpp

/// I/O loop -> connection: the client of the request at this reply_target went away before its
/// upstream call began (so step 8 may drop it from the queue).
using client_gone_atom = caf::atom_constant<caf::atom("cl_gone")>;

/// An HTTP call an actor asks an I/O loop to make (a remote moderation engine's check, a
/// health probe, a merged prompt_array call).
struct side_call {
  caf::actor reply_to;  ///< gets the side_answer
  uint64_t id = 0;      ///< echoed in the side_answer
  std::string method = "POST";
  std::string provider;  ///< "": the loop's HTTP client; else that provider's transport (sim)
  std::string url;       ///< http(s), or sim:// with `provider`
  std::vector<std::string> headers;  ///< "Name: value"
  std::string body;
  uint32_t timeout_ms = 1000;  ///< the whole call; slower is a failure ("total_timeout")
  /// The longest answer read; a longer one is a failure ("too_large").
  uint32_t max_answer_bytes = 1024 * 1024;
};

/// The way back to the I/O world. Implemented by node/io_loop; callable from any thread.
class io_port {
 public:
  virtual ~io_port() = default;
  /// Steps 10-12: perform the upstream call and relay its answer to the client. The port sends
  /// exactly one request_outcome back to the connection actor when the request has ended.
  virtual void dispatch(upstream_plan&& plan) = 0;
  /// Answers the client with an error; the request ends there (no outcome follows).
  virtual void reject(reply_target to, openai::api_error&& error, const rate_headers& rate) = 0;
  /// Step 6 hit: answers the client from the cache. One request_outcome follows, as for
  /// dispatch.
  virtual void serve(cached_reply&& reply) = 0;
  /// Step 7, leader: also send this request's stream events to `follower` (the chunks so far,
  /// then the live ones, then the end), as dedup_events tagged with `key`.
  virtual void attach(reply_target leader, caf::actor follower, canonical::digest key) = 0;
  /// Step 7, follower: relay the leader's live stream events to this client. The chunk with
  /// `end` ends the request: one request_outcome follows.
  virtual void follow(follow_chunk&& chunk) = 0;
  /// Step 13, write-ahead: the usage record of a request whose outcome was `held` is durable
  /// (or there is none to write): send the answer's last bytes. Any thread.
  virtual void release(reply_target to) = 0;
  /// Makes `c` with the loop's HTTP client and sends exactly one side_answer to c.reply_to,
  /// failures and timeouts included. Any thread.
  virtual void call(side_call&& c) = 0;
};

/// Where a model is served. Built once from config by the node.
struct model_route {
  std::string provider;
  uint32_t endpoint = 0;       ///< index among all endpoints of the node (health, load)
  uint32_t index = 0;          ///< index in its model_entry::endpoints
  std::string upstream_model;  ///< the model name the provider expects
  std::string base_url;        ///< "http(s)://host/v1" or "sim://<provider>/v1"
  bool embedding = false;      ///< an embedding model (only /v1/embeddings)
  uint32_t context_window = 0;
  uint32_t connect_timeout_ms = 0;
  uint32_t first_byte_timeout_ms = 0;
  uint32_t total_timeout_ms = 0;
  bool prompt_array = false;  ///< takes a list of prompts in one /completions call (step 8)
  bool anthropic = false;     ///< speaks the Messages API (chat only; the loop translates)
  // Cache policy of the model (issue 3).
  std::string version = "1";  ///< part of every cache key
  bool cache = true;
  uint32_t cache_ttl_s = 3600;
  bool cache_nondeterministic = false;
  float semantic_threshold = 0.95f;
  std::string filing_id;  ///< algorithm-filing ID (a tenant's own overrides it); "" none
  // List prices per 1M tokens (a price stored through the admin API overrides them).
  double price_input_per_m = 0;
  double price_cached_input_per_m = 0;
  double price_output_per_m = 0;
  std::string currency = "CNY";
  // Routing (issue 6).
  std::string region;
  std::vector<std::string> tags;
  uint32_t weight = 100;               ///< static weight; 0 = a last resort
  uint32_t max_concurrency = 0;        ///< requests in flight to the provider; 0 = unlimited
  double capacity_tokens_per_sec = 0;  ///< step 8's token bucket; 0 = unlimited
};

/// A model clients may ask for: the endpoints that serve it, one per provider, in config order.
/// What clients see of the model (kind, cache policy, filing ID) is the same at each (the config
/// loader checks it), so endpoints[0] stands for the model until one is chosen.
struct model_entry {
  std::vector<model_route> endpoints;  ///< never empty
  /// prefix_affinity: the endpoints (by index) on a consistent-hash ring; null otherwise.
  std::shared_ptr<const routing::affinity_ring> ring;
  /// Step 3's context-length protection: the smallest context window of the endpoints.
  scheduling::context_mode context_mode = scheduling::context_mode::reject;
  uint32_t context_window = 0;  ///< 0: not checked
  /// Exact prompt counts from the model's tokenizer_file; null: the estimator.
  std::shared_ptr<const scheduling::token_counter> counter;
  /// Step 8: the model's batcher (actors/batcher.hpp); unset: requests go at once.
  caf::actor batcher;
  /// Step 8: its slots, for direct grants (batcher_gate); null: every request asks the batcher.
  std::shared_ptr<batcher_gate> gate;
};

/// account_plan::store_health values.
constexpr uint8_t store_ok = 0;
constexpr uint8_t store_failing = 1;
constexpr uint8_t store_full = 2;

/// Who may call, what they may spend, and where usage is recorded (steps 1, 2 and 13).
struct account_plan {
  bool required = false;                       ///< every request needs an API key
  std::string anonymous_tenant = "anonymous";  ///< the tenant of requests without a key
  std::shared_ptr<directory_cell> directory = std::make_shared<directory_cell>();  ///< never null
  std::vector<caf::actor> quota;  ///< tenant_quota shards, by tenant
  caf::actor ledger;              ///< usage records (may be unset in unit tests)
  double cny_per_usd = 7.2;       ///< to charge a tenant in the other currency
  double cache_hit_charge = 0;    ///< fraction of the list price charged for a cache/dedup answer
  /// Hold each answer's last bytes until its usage record is durable (billing.write_ahead);
  /// free cache/dedup answers (cache_hit_charge 0) are recorded behind.
  bool write_ahead = true;
  /// Messages of records that no answer waits for, sent to the ledger or the audit writer and
  /// not yet written (the writers count them down). Never null.
  std::shared_ptr<std::atomic<int64_t>> records_behind = std::make_shared<std::atomic<int64_t>>(0);
  /// From this many records_behind on, answers wait for their records whatever write_ahead
  /// says: back-pressure, so a writer that falls behind cannot grow its backlog without bound.
  int64_t max_records_behind = 1000;
  /// The store as the ledger last found it: store_ok, store_failing or store_full (failing,
  /// and store.max_pending_records are waiting). Written by the ledger's hooks; never null.
  std::shared_ptr<std::atomic<uint8_t>> store_health = std::make_shared<std::atomic<uint8_t>>(0);
  bool fail_open = false;     ///< store.fail_mode = "open"
  accounts::limits fallback;  ///< fail_mode open, store failing: per-tenant rpm and concurrency
  /// Outcomes sent to connection actors and not yet settled (the node waits for 0 at shutdown,
  /// before the ledger's last write). Incremented by the I/O loops.
  std::shared_ptr<std::atomic<int64_t>> settling;
};

/// The node's cache, as the pipeline uses it (steps 5, 6 and 13).
struct cache_plan {
  bool enabled = false;
  bool template_tier = true;
  bool semantic_tier = true;
  bool semantic_multi_turn = false;
  uint32_t lookup_timeout_ms = 50;
  canonical::embed_options embed;  ///< the builtin embedder (no actor hop)
  /// The embedder actor (actors/embedder.hpp) when cache.embedder = "openai"; unset: builtin.
  caf::actor embedder;
  std::vector<cache_shard_actor> shards;  ///< shard_of(key, shards.size()) owns key
  /// The local shards' tables, by shard (the exact-hit lane reads them); empty: no lane.
  std::vector<std::shared_ptr<shared_cache_store>> stores;
  bool loop_hits = true;  ///< cache.loop_hits: the I/O loops answer plain exact hits themselves
  /// Some model caches requests that are not deterministic (its cache_nondeterministic).
  bool any_nondeterministic = false;
  bool dedup = true;
  std::vector<caf::actor> dedup_tables;  ///< dedup_table actors, sharded like the cache
};

/// Moderation (steps 4 and 11) and the audit record (step 13), issue 5.
struct compliance_plan {
  std::shared_ptr<moderation_cell> moderation =
      std::make_shared<moderation_cell>();  ///< never null
  caf::actor audit;                         ///< the audit writer; unset: no audit trail
  bool audit_write_ahead = false;           ///< held answers also wait for their audit record
  /// The audit writer also writes the usage records sent along with audit records (in one
  /// batch): step 13 then sends a request's two records as one message, and a held answer
  /// waits for one release.
  bool audit_carries_usage = false;
  audit::hash_algo audit_algo = audit::hash_algo::sha256;  ///< the writer's (audit.hash)
  /// The writer keeps request and response texts (audit text mode clear or sealed): records
  /// carry them and the writer digests them. Otherwise step 13 digests the texts on its own
  /// thread and sends the digests alone: the node's one writer thread then hashes no prompt or
  /// answer, and no text is copied to it.
  bool audit_keeps_text = false;
};

/// Read-only context shared by every connection actor of a node.
/// How step 9 ranks a model's endpoints (issue 6).
struct routing_plan {
  std::shared_ptr<routing_board> board;  ///< null: config order, no health (unit tests)
  routing::policy policy = routing::policy::performance_first;
  routing::weights weights;
  uint32_t max_attempts = 3;           ///< endpoints in a plan: the first and its fallbacks
  double affinity_load_factor = 1.25;  ///< prefix affinity's bound (routing.affinity_load_factor)
};

/// A model group (routing.groups): its id splits requests over its members by weight, sticky
/// per user. A stored model_split (admin API) replaces the configured weights.
struct model_group {
  std::vector<std::string> members;  ///< the first is the stable one
  std::vector<uint32_t> weights;     ///< configured, by member
};

/// The virtual auto model (routing.auto_model): the cheapest chat model that fits a request.
struct auto_plan {
  std::string name;                           ///< the id clients send; "" none
  std::vector<routing::auto_choice> choices;  ///< models with an auto_tier, prices in CNY
  routing::auto_thresholds thresholds;
};

struct pipeline {
  std::unordered_map<std::string, model_entry> models;
  std::unordered_map<std::string, std::string> aliases;  ///< alias -> model id (routing.aliases)
  std::unordered_map<std::string, model_group> groups;   ///< group id -> its models
  auto_plan auto_model;
  routing_plan routing;
  std::vector<io_port*> ports;  ///< by reply_target::loop
  cache_plan cache;
  account_plan accounts;
  compliance_plan compliance;
};

/// The configured list price of the model `model` served by `r` (the admin API's price tables
/// start from it; a stored price overrides it).
accounts::price list_price(const model_route& r, const std::string& model);

/// Step 1 for any endpoint: who is calling. `bearer` is the token after "Bearer " (may be
/// empty); `endpoint` is chat | completions | embeddings | models; `model` may be empty
/// (/v1/models). Returns false and sets `error` (401 or 403) when refused. On success `key` is
/// the caller's key (null: anonymous) and `tenant` its tenant id.
bool authenticate(const account_plan& plan, const directory& dir, std::string_view bearer,
                  std::string_view endpoint, std::string_view model, int64_t now_s,
                  const accounts::api_key*& key, std::string& tenant, openai::api_error& error);

struct connection_state {
  openai::request req;  ///< the request in flight (empty between requests)
  reply_target to;
  request_meta meta;
  const model_entry* model = nullptr;  ///< step 3's model
  const model_route* route = nullptr;  ///< its endpoint: the first until one answered
  // Step 5's results, kept until settlement stores the answer.
  canonical::key key;
  canonical::digest exact_key;     ///< the scoped full hash (empty: not cacheable)
  canonical::digest ns;            ///< the namespace the template/semantic pointers live in
  canonical::digest template_key;  ///< empty: no template tier for this request
  std::string guard;               ///< the semantic guard, as text
  std::vector<float> embedding;    ///< step 6's, on an exact miss; step 13 reuses it
  bool store = false;              ///< step 13 stores a cacheable answer
  bool query_tiers = false;        ///< the template/semantic tiers apply (keys made lazily)
  bool from_cache = false;         ///< answered by step 6 or by a dedup leader
  bool leading = false;            ///< step 7: the leader of identical requests in flight
  bool rechecking = false;         ///< step 7: made leader, looking in the cache once more
  bool following = false;          ///< step 7: waiting on a leader's answer
  bool live = false;               ///< following a leader's live stream
  bool deduped = false;            ///< answered by a dedup leader (not the cache)
  /// Step 7: streaming followers that joined during the recheck, attached if it misses.
  std::vector<dedup_attach> early_attaches;
  uint64_t lookup_start_ns = 0;
  // Steps 1-2: the caller and what was reserved for it.
  std::shared_ptr<const directory> dir;       ///< the account tables this request was checked by
  const accounts::api_key* caller = nullptr;  ///< the caller's key; null: anonymous (in `dir`)
  std::string tenant;
  std::string scope;       ///< the cache scope: "tenant:<id>" or "shared:<name>", then "|" and the
                           ///< tenant's residency rule if it has one
  uint64_t ticket = 0;     ///< tenant_quota reservation (0: none)
  uint8_t priority = 2;    ///< step 8: P0..P4, from the key (x-tc-priority may change it)
  bool scheduled = false;  ///< step 8 granted a slot: sched_done is owed to the batcher
  int direct_slot = -1;    ///< step 8's slot was a direct grant at this endpoint (batcher_gate)
  bool direct_p0 = false;  ///< ... taken as P0
  bool queued = false;     ///< step 8 asked and has no answer yet
  bool client_gone = false;   ///< the loop said the client left before the upstream call
  uint32_t sched_tokens = 0;  ///< the estimate the slot reserved
  rate_headers rate;
  int64_t received_ms = 0;
  // Step 4 and the audit record: what moderation found, and which records hold the answer.
  std::vector<audit::engine_verdict> input_verdicts;
  std::string input_text;   ///< the request body as received (the audit record's input)
  bool ack_ledger = false;  ///< a held answer waits for the ledger's record
  bool ack_audit = false;   ///< ... and for the audit record
  // Step 4 with remote engines: the check in flight (side calls through the I/O loop).
  std::shared_ptr<const moderation_rules> mod_rules;
  std::vector<std::string> mod_texts;
  moderation_result mod;
  std::vector<size_t> mod_engines;  ///< engine index per call id (low byte)
  size_t mod_waiting = 0;
  uint64_t mod_round = 0;  ///< high bits of call ids: a late answer of another check is ignored
  uint64_t mod_started_ns = 0;
  std::shared_ptr<const pipeline> ctx;
  static inline const char* name = "connection";
};

/// A request the I/O loop answers from the cache itself, on its own thread (the exact-hit
/// lane): steps 1, 3, 5 and 6's exact tier, when no other step applies to it. Its state lives
/// with the loop's request until step 13.
struct lane_request {
  connection_state st;
};

/// The exact-hit lane (any I/O loop thread; never blocks). When the request is a plain exact hit
/// (auth passes, no quota limit applies, no input engine runs, the model is named as served and
/// the cache may answer), fills `reply` and returns the lane state; otherwise returns null and
/// leaves `req` and `meta` as they were, for the connection actor to run every step. A refusal
/// is never answered here (the actor answers and audits it), nor is a miss.
std::unique_ptr<lane_request> try_exact_lane(const std::shared_ptr<const pipeline>& ctx,
                                             openai::request& req, request_meta& meta,
                                             reply_target to, cached_reply& reply);

/// Step 13 of a lane request, once the I/O loop has written (or held) its answer: its usage and
/// audit records, appended to `out` with the actor each goes to (the loop sends them in its next
/// burst); a held answer is released by them as on the actor way.
void settle_exact_lane(lane_request& lane, const request_outcome& outcome,
                       std::vector<std::pair<caf::actor, caf::message>>& out);

/// Spawned by an I/O loop (kept in its pool). Messages, in the order they arrive:
///   (openai::request, reply_target, request_meta)  a parsed request: runs steps 1-10
///   request_outcome                  how that request ended: step 13, then ready for the next
///   dedup_attach                     (leader) a streaming follower joined
///   dedup_events, dedup_result       (follower) the leader's stream events, its answer
///   side_answer                      a remote moderation engine's verdict (step 4)
///   (client_gone_atom, reply_target) its client left before the upstream call (step 8)
caf::behavior connection(caf::stateful_actor<connection_state>* self,
                         std::shared_ptr<const pipeline> ctx);

}  // namespace tc::actors
