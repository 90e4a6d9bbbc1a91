// The typed settings of a node, filled by config/loader from one TOML file. Every field here is
// declared once, with type, default, bounds and help, in config/schema.cpp; the defaults below
// are the same values (a test checks they agree).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tc::config {

/// One outage window of a simulated provider: seconds since the provider started.
struct sim_outage {
  double start_s = 0;
  double end_s = 0;
};

/// The simulated GPU endpoint (a test double). Also tcsim's settings.
struct sim_settings {
  double ttft_ms = 50;  ///< time to first token for one sequence; 0 with tokens_per_sec 0 = instant
  double tokens_per_sec = 60;  ///< per-sequence decode rate with one active sequence; 0 = instant
  uint32_t max_batch = 32;     ///< concurrent sequences; more wait for a slot
  double batch_contention = 0.05;    ///< per-sequence rate = tokens_per_sec / (1 + c*(n-1))
  uint32_t default_max_tokens = 48;  ///< completion length when the request sets no max_tokens
  uint32_t embedding_dim = 256;      ///< embedding length when the request sets no dimensions
  /// Leading system prompts remembered by the simulated prefix cache (LRU); 0 = no prefix cache
  uint32_t prefix_cache_entries = 0;
  double error_rate = 0;  ///< fraction of requests answered with error_status
  uint32_t error_status = 503;
  double spike_rate = 0;  ///< fraction of requests whose TTFT grows by spike_ms
  double spike_ms = 0;
  std::vector<sim_outage> outages;  ///< windows where every request gets 503
  uint64_t seed = 0;                ///< mixed into the per-request seed
};

/// One model served by a provider.
struct model_settings {
  std::string name;           ///< the id clients send
  std::string upstream_name;  ///< the id sent upstream (default: name)
  uint32_t context_window = 32768;
  double price_input_per_m = 0;  ///< per 1M input tokens
  double price_cached_input_per_m = 0;
  double price_output_per_m = 0;
  std::string currency = "CNY";
  std::string version = "1";            ///< bump to invalidate cached answers
  std::string kind = "chat";            ///< chat | embedding
  bool cache = true;                    ///< answers of this model may be cached
  uint32_t cache_ttl_s = 3600;          ///< how long a cached answer lives
  bool cache_nondeterministic = false;  ///< also cache temperature > 0 requests with no seed
  double semantic_threshold = 0.95;     ///< cosine similarity a semantic hit needs
  std::string filing_id;                ///< CAC algorithm-filing ID stamped on answers; "" none
  bool prefix_affinity = false;  ///< its endpoints are replicas: same prompt prefix, same one
  std::string context_mode = "reject";  ///< reject | truncate_oldest | truncate_middle
  std::string tokenizer_file;  ///< a tokenizer.json for exact prompt counts; "" = the estimator
  // Step 8, the model's batcher (issue 6).
  std::string batch_strategy = "adaptive";  ///< time | size | adaptive | priority
  uint32_t batch_max_wait_ms = 0;           ///< longest a request is held for others; 0 = none
  uint32_t batch_max_size = 32;             ///< requests released together at most
  uint32_t batch_latency_target_ms = 200;   ///< adaptive windows stay within a quarter of it
  std::string auto_tier = "none";  ///< what routing.auto_model may use it for: none|light|heavy
};

struct provider_settings {
  std::string name;
  std::string type = "openai";  ///< openai | anthropic | sim
  std::string base_url;         ///< e.g. https://api.deepseek.com/v1 (openai type)
  std::string api_key_env;      ///< environment variable holding the key; never the key itself
  std::string region;
  std::vector<std::string> tags;
  uint32_t connect_timeout_ms = 2'000;
  uint32_t first_byte_timeout_ms = 30'000;
  uint32_t total_timeout_ms = 300'000;
  uint32_t max_concurrency = 256;
  double capacity_tokens_per_sec = 0;  ///< 0 = unknown
  uint32_t weight = 100;               ///< static routing weight; 0 = only when nothing else can
  std::string batch_dispatch = "concurrent";  ///< concurrent | prompt_array
  // type = "anthropic" only (the Messages API).
  std::string anthropic_version = "2023-06-01";    ///< the anthropic-version header
  std::string cache_control = "system_and_tools";  ///< none | system_and_tools
  uint32_t anthropic_max_tokens = 4096;            ///< max_tokens sent when the client set none
  std::vector<model_settings> models;
  sim_settings sim;  ///< type = "sim" only
};

struct server_settings {
  std::string listen = "127.0.0.1:8080";
  std::string admin_listen = "127.0.0.1:9090";
  uint32_t io_threads = 1;
  uint32_t max_header_bytes = 16 * 1024;
  uint32_t max_body_bytes = 4 * 1024 * 1024;
  uint32_t header_timeout_ms = 10'000;
  uint32_t body_timeout_ms = 30'000;
  uint32_t idle_timeout_ms = 60'000;
  uint32_t max_pipelined = 64;
  uint32_t write_high_watermark = 256 * 1024;
  uint32_t shutdown_grace_ms = 10'000;
  uint32_t max_connections = 50'000;
  uint32_t poll_spin_us = 100;           ///< low load: a loop polls this long before sleeping
  uint32_t poll_spin_max_in_flight = 2;  ///< "low load": the node's requests in flight, at most
  int32_t io_nice = 0;                   ///< nice of the I/O loop threads (-20..19)
};

struct actors_settings {
  uint32_t scheduler_threads = 0;  ///< 0 = number of cores
  uint32_t aggressive_poll_attempts = 100;
  uint32_t moderate_poll_attempts = 0;
  std::string thread_policy = "batch";  ///< batch (SCHED_BATCH) | normal, for the actor threads
};

/// The response cache and in-flight dedup (issue 3). Per-model policy is on the model.
struct cache_settings {
  bool enabled = true;
  uint32_t shards = 8;               ///< cache_shard actors (and dedup_table actors)
  uint64_t max_entries = 1'000'000;  ///< per node, split evenly over the shards
  uint64_t max_bytes = 1ull << 30;   ///< per node, split evenly over the shards
  bool template_tier = true;
  bool semantic_tier = true;
  bool semantic_multi_turn = false;   ///< semantic hits for requests with history too
  std::string embedder = "builtin";   ///< builtin (feature hashing) | openai (/v1/embeddings)
  uint32_t embedding_dim = 256;       ///< the semantic index's vector length (any embedder)
  uint32_t semantic_ef = 64;          ///< HNSW search breadth
  uint32_t semantic_m = 16;           ///< HNSW links per node
  uint32_t semantic_budget_pct = 25;  ///< share of a thread each shard spends on semantic work
  uint32_t lookup_timeout_ms = 50;    ///< a cache shard slower than this counts as a miss
  bool dedup = true;                  ///< coalesce identical in-flight requests
  bool loop_hits = true;              ///< the I/O loops answer plain exact hits themselves

  // The openai embedder (actors/embedder.hpp).
  std::string embedder_provider;             ///< a [[providers]] name: base_url, key, transport
  std::string embedder_model;                ///< the `model` sent
  bool embedder_send_dimensions = false;     ///< send embedding_dim as `dimensions`
  uint32_t embedder_batch_max = 64;          ///< distinct texts in one call at most
  uint32_t embedder_batch_wait_ms = 2;       ///< longest a text waits for others; 0 = at once
  uint32_t embedder_timeout_ms = 2000;       ///< a slower call fails
  uint32_t embedder_max_calls = 8;           ///< calls in flight at most
  uint32_t embedder_max_pending = 4096;      ///< texts waiting at most; beyond, refused at once
  uint32_t embedder_max_text_bytes = 16384;  ///< longer queries are not embedded
};

/// Who may call (issue 4). Keys, tenants and their limits are managed through the admin API.
struct auth_settings {
  bool required = false;                       ///< every data-plane request needs an API key
  std::string anonymous_tenant = "anonymous";  ///< the tenant of requests without a key
};

/// The admin port's own credentials.
struct admin_settings {
  std::string token_env = "TC_ADMIN_TOKEN";  ///< env var holding the first owner token
};

/// The node's RocksDB database: accounts, usage ledger (and audit, issue 5).
struct store_settings {
  std::string path;                    ///< a directory; "" = in memory (lost at exit)
  std::string durability = "process";  ///< process (survives kill -9) | fsync (power loss)
  std::string fail_mode = "closed";  ///< closed: 503 while usage cannot be recorded; open: fallback
  uint32_t fallback_rpm = 60;        ///< fail_mode open: requests a minute per tenant
  uint32_t fallback_concurrency = 4;      ///< fail_mode open: requests in flight per tenant
  uint32_t max_pending_records = 100000;  ///< fail_mode open: records kept in memory at most
  uint32_t max_records_behind = 1000;     ///< unwaited records not yet written; then answers wait
};

/// Money: how usage is priced and charged.
struct billing_settings {
  double cny_per_usd = 7.2;       ///< to charge a tenant in the other currency
  double cache_hit_charge = 0.0;  ///< fraction of the list price charged for a cache/dedup answer
  uint32_t quota_shards = 4;      ///< tenant_quota actors on this node
  bool write_ahead = true;        ///< an answer's last bytes wait for its durable usage record
  std::string alert_webhook;      ///< budget alerts POSTed here as JSON; "" none
};

/// One moderation engine ([[moderation.engines]]).
struct moderation_engine_settings {
  std::string name;                   ///< unique; shown in audit records and metrics
  std::string type;                   ///< keywords | pii | http | openai
  std::string direction = "both";     ///< both | input | output
  uint32_t timeout_ms = 200;          ///< http/openai: an answer slower than this is a failure
  std::string on_failure = "open";    ///< open: left out of the vote; closed: counts as block
  double weight = 1.0;                ///< policy weighted: this engine's vote
  std::vector<std::string> lexicons;  ///< keywords: UTF-8 lexicon files
  std::string default_category = "general";  ///< keywords: terms before any [category] header
  std::vector<std::string>
      actions;  ///< "category=action" (keywords, openai) or "kind=action" (pii)
  std::string default_action = "block";  ///< what a finding without an entry in actions does
  uint32_t reload_interval_ms = 2000;    ///< keywords: lexicon change poll; 0 = never reload
  std::vector<std::string> kinds = {"id_card", "phone", "bank_card", "email"};  ///< pii
  std::string url;          ///< http: the webhook; openai: the base URL (…/v1)
  std::string api_key_env;  ///< http/openai: env var with the bearer key; "" none
  std::string model;        ///< openai: the moderation model; "" the endpoint's default
};

/// Two-way moderation (issue 5).
struct moderation_settings {
  bool enabled = false;
  bool input = true;                     ///< step 4: requests, before any cache or upstream
  bool output = true;                    ///< step 11: answers, streams window by window
  std::string policy = "any_block";      ///< any_block | majority | weighted
  double block_threshold = 0.5;          ///< weighted: block at this share of the votes
  uint32_t stream_hold_back_bytes = 64;  ///< at least this much stream text waits for the scan
  std::vector<moderation_engine_settings> engines;
};

/// The tamper-evident audit trail (issue 5).
struct audit_settings {
  bool enabled = true;               ///< one hash-chained record per request
  std::string hash = "sha256";       ///< sha256 | sm3
  std::string text = "none";         ///< none (digests only) | clear | sealed (SM4)
  std::string sm4_key_env;           ///< sealed: env var with the key as 32 hex digits
  uint32_t retention_days = 0;       ///< older records are pruned; 0 = keep forever
  uint32_t prune_interval_s = 3600;  ///< how often retention runs
  bool write_ahead = true;           ///< an answer's last bytes wait for its durable record
};

/// Routing among the endpoints that serve a model, and their health (issue 6).
struct routing_settings {
  std::string policy = "performance_first";  ///< cost_first | performance_first | compliance_first
  double weight_latency = 0.3;               ///< score weights, normalized by the router
  double weight_price = 0.3;
  double weight_load = 0.2;
  double weight_availability = 0.2;
  uint32_t max_attempts = 3;           ///< endpoints tried per request (failover before first byte)
  double ewma_alpha = 0.2;             ///< weight of a new latency / TTFT sample
  uint32_t health_window_ms = 30'000;  ///< error and 429 rates are over this window
  uint32_t health_min_samples = 5;     ///< rates count from this many outcomes in the window
  double breaker_error_rate = 0.5;     ///< the breaker opens at this failure rate...
  uint32_t breaker_consecutive = 5;    ///< ...or after this many failures in a row
  uint32_t breaker_open_ms = 5'000;    ///< first open period (doubles on a failed probe, max 60 s)
  uint32_t breaker_probes = 1;         ///< requests let through while half-open
  double latency_target_ms = 2'000;    ///< latency that halves the latency part of the score
  uint32_t probe_interval_ms = 1'000;  ///< active probes of an open endpoint; 0 = none
  double affinity_load_factor = 1.25;  ///< prefix affinity: no replica above this x the mean
  std::vector<std::string> aliases;    ///< "alias=model": another id clients may send
  /// "group=model:weight,model:weight": an id whose requests are split over models by weight,
  /// sticky per user (canary and A/B); the first model is the stable one (rollback target).
  std::vector<std::string> groups;
  std::string auto_model;                     ///< id of the virtual model that picks one; "" none
  uint32_t auto_heavy_prompt_tokens = 2'000;  ///< auto: heavy above this many prompt tokens
  uint32_t auto_heavy_max_tokens = 1'024;     ///< auto: heavy when max_tokens is above this
};

/// Hooks for chaos tests; off in production.
struct debug_settings {
  bool fault_injection = false;  ///< POST /v1/debug/faults on the admin port (owner only)
};

struct log_settings {
  std::string level = "info";  ///< debug | info | warn | error
  bool access_log = false;     ///< one JSON line per request
};

/// Step 8: every model's batcher holds its requests in priority order until an endpoint has
/// capacity (issue 6). Per-model batch windows are on the model, capacities on the provider.
struct scheduling_settings {
  bool enabled = true;                 ///< false: every request is dispatched at once
  uint32_t max_queue_depth = 10'000;   ///< requests held per model; more are answered 503
  uint32_t queue_timeout_ms = 30'000;  ///< held longer: 503 queue_timeout
  uint32_t aging_ms = 2'000;           ///< waited this long: served as one priority higher
  uint32_t weight_p1 = 8;              ///< P1..P4 token shares of the capacity left by P0
  uint32_t weight_p2 = 4;
  uint32_t weight_p3 = 2;
  uint32_t weight_p4 = 1;
  uint32_t quantum_tokens = 1'024;  ///< deficit round-robin quantum per unit of weight
  double p0_reserved = 0.1;  ///< fraction of each endpoint's max_concurrency only P0 may take
};

struct settings {
  std::string node_id = "node-1";
  server_settings server;
  actors_settings actors;
  cache_settings cache;
  auth_settings auth;
  admin_settings admin;
  store_settings store;
  billing_settings billing;
  moderation_settings moderation;
  audit_settings audit;
  routing_settings routing;
  scheduling_settings scheduling;
  log_settings log;
  debug_settings debug;
  std::vector<provider_settings> providers;
};

}  // namespace tc::config
