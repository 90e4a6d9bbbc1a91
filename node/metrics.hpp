// The node's Prometheus registry (prometheus-cpp) and the metric families of the data plane.
// Families are created once at start-up; label values come only from config-declared sets
// (model, provider) and fixed sets (status class), so cardinality is bounded.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "actors/batcher.hpp"
#include "actors/embedder.hpp"

namespace tc::node {

/// Metric families shared by all I/O loops. Thread-safe (prometheus-cpp metrics are).
class metrics {
  std::shared_ptr<prometheus::Registry> registry_;  // first: the families below live in it

 public:
  metrics();

  /// Text exposition of everything registered (GET /metrics on the admin port).
  std::string serialize() const;

  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

  /// The series of one (model, provider) route, created on first use.
  struct route_series {
    std::string model_label;
    std::string provider_label;
    prometheus::Histogram* upstream_latency;
    prometheus::Histogram* upstream_ttft;
    prometheus::Histogram* overhead;
    prometheus::Gauge* upstream_in_flight;
    /// Tokens upstreams reported: prompt, of which served from their prefix cache, completion.
    prometheus::Counter* prompt_tokens = nullptr;
    prometheus::Counter* cached_tokens = nullptr;
    prometheus::Counter* completion_tokens = nullptr;
    /// Finished requests by status class (index status / 100, 0 for out of range).
    prometheus::Counter* requests[6] = {};
    prometheus::Histogram* latency[6] = {};
  };

  prometheus::Family<prometheus::Counter>& requests_total;
  prometheus::Family<prometheus::Histogram>& request_seconds;
  prometheus::Family<prometheus::Histogram>& upstream_seconds;
  prometheus::Family<prometheus::Histogram>& upstream_ttft_seconds;
  prometheus::Family<prometheus::Histogram>& overhead_seconds;
  prometheus::Family<prometheus::Gauge>& upstream_in_flight;
  prometheus::Family<prometheus::Counter>& upstream_tokens_total;  ///< model, provider, kind
  prometheus::Family<prometheus::Gauge>& requests_in_flight;
  prometheus::Family<prometheus::Gauge>& allocator_bytes;  ///< kind: slabs, central_free
  prometheus::Family<prometheus::Gauge>& connections_open;
  prometheus::Family<prometheus::Counter>& protocol_errors_total;
  prometheus::Family<prometheus::Counter>& connections_refused_total;
  prometheus::Family<prometheus::Counter>& upstream_failures_total;
  prometheus::Family<prometheus::Counter>& failovers_total;  ///< from, to (providers)
  // Routing (issue 6), read from the routing board at scrape time; model, provider.
  prometheus::Family<prometheus::Gauge>& endpoint_health_score;
  prometheus::Family<prometheus::Gauge>& endpoint_breaker_state;  ///< 0 closed, 1 half-open, 2 open
  prometheus::Family<prometheus::Gauge>& endpoint_in_flight;
  // Step 8, the batchers (issue 6): model, priority.
  prometheus::Family<prometheus::Gauge>& queue_depth;
  prometheus::Family<prometheus::Histogram>& queue_wait_seconds;
  prometheus::Family<prometheus::Counter>& dispatched_total;
  prometheus::Family<prometheus::Counter>& queue_refused_total;   ///< model, priority, reason
  prometheus::Family<prometheus::Histogram>& batch_size;          ///< model
  prometheus::Family<prometheus::Counter>& merged_calls_total;    ///< model, outcome
  prometheus::Family<prometheus::Counter>& merged_prompts_total;  ///< model, outcome
  // In-process simulated providers (a test double), per provider and loop.
  prometheus::Family<prometheus::Gauge>& sim_utilisation;
  prometheus::Family<prometheus::Gauge>& sim_active_sequences;
  prometheus::Family<prometheus::Counter>& streams_cut_total;
  prometheus::Family<prometheus::Counter>& client_disconnects_total;
  prometheus::Family<prometheus::Counter>& moderation_blocks_total;  ///< direction

  // The response cache (issue 3).
  prometheus::Family<prometheus::Counter>& cache_hits_total;          ///< model, tier
  prometheus::Family<prometheus::Counter>& cache_misses_total;        ///< model
  prometheus::Family<prometheus::Counter>& cache_dedup_joins_total;   ///< model
  prometheus::Family<prometheus::Histogram>& cache_lookup_seconds;    ///< result
  prometheus::Family<prometheus::Counter>& cache_saved_tokens_total;  ///< model, kind
  prometheus::Family<prometheus::Counter>& cache_saved_cost_total;    ///< model
  prometheus::Family<prometheus::Gauge>& cache_entries;               ///< tier-independent records
  prometheus::Family<prometheus::Gauge>& cache_bytes;  ///< kind: answers | semantic_index
  prometheus::Family<prometheus::Gauge>& cache_semantic_entries;
  prometheus::Family<prometheus::Gauge>& cache_semantic_namespaces;
  prometheus::Family<prometheus::Gauge>& cache_evictions;         ///< since start (from the shards)
  prometheus::Family<prometheus::Gauge>& cache_expirations;       ///< since start (from the shards)
  prometheus::Family<prometheus::Gauge>& cache_semantic_skipped;  ///< op; since start (shards)
  prometheus::Family<prometheus::Counter>& budget_alerts_total;   ///< period, percent
  prometheus::Family<prometheus::Counter>& ledger_records_total;
  prometheus::Family<prometheus::Counter>& audit_records_total;
  prometheus::Family<prometheus::Gauge>& records_behind;  ///< unwaited record messages unwritten
  // The openai embedder (actors/embedder.hpp, issue 3).
  prometheus::Family<prometheus::Counter>& embedder_calls_total;     ///< outcome
  prometheus::Family<prometheus::Counter>& embedder_texts_total;     ///< embedded (ok calls)
  prometheus::Family<prometheus::Counter>& embedder_refused_total;   ///< reason
  prometheus::Family<prometheus::Histogram>& embedder_batch_size;    ///< texts per call
  prometheus::Family<prometheus::Histogram>& embedder_call_seconds;  ///< outcome
  prometheus::Family<prometheus::Gauge>& embedder_pending;
  prometheus::Family<prometheus::Counter>& cache_loop_hits_total;

  /// A model's cache series.
  struct cache_series {
    prometheus::Counter* hits[3] = {};  ///< by actors::cache_tier
    prometheus::Counter* misses = nullptr;
    prometheus::Counter* dedup_joins = nullptr;
    prometheus::Counter* saved_prompt_tokens = nullptr;
    prometheus::Counter* saved_completion_tokens = nullptr;
    prometheus::Counter* saved_cost = nullptr;
  };
  prometheus::Histogram* lookup_hit = nullptr;
  prometheus::Histogram* lookup_miss = nullptr;
  prometheus::Counter* loop_hits = nullptr;  ///< exact hits the I/O loops answered themselves
};

/// A model's batcher's series (actors/batcher.hpp reports into them, on its own thread).
std::shared_ptr<actors::batcher_metrics> batcher_series(metrics& m, const std::string& model);

/// The embedder's series (actors/embedder.hpp reports into them, on its own thread).
std::shared_ptr<actors::embedder_metrics> embedder_series(metrics& m);

/// A per-loop cache of series handles, so the request path does no label-map lookups under
/// the families' mutex and builds no label strings. Used by one I/O loop thread only.
class metrics_cache {
 public:
  explicit metrics_cache(metrics& m) : m_(m) {}
  /// The series of a (model, provider) route; an empty name is labelled "none".
  metrics::route_series& route(std::string_view model, std::string_view provider);
  /// Counts one finished request of the route with its status and latency.
  void finished(metrics::route_series& r, int status, double seconds);
  metrics& families() { return m_; }
  /// A model's cache series (model must be config-declared), created on first use.
  metrics::cache_series& cache(std::string_view model);

 private:
  metrics& m_;
  std::map<std::string, std::map<std::string, metrics::route_series, std::less<>>, std::less<>>
      routes_;
  std::map<std::string, metrics::cache_series, std::less<>> caches_;
};

/// "2xx", "4xx", "5xx" ...
std::string_view status_class(int status);

}  // namespace tc::node
