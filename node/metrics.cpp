#include "node/metrics.hpp"

#include <algorithm>
#include <array>

#include <prometheus/text_serializer.h>

namespace tc::node {

namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

/// Latency buckets from 50 µs to 60 s: the gateway's own overhead lives in the first ones.
const prometheus::Histogram::BucketBoundaries& latency_buckets() {
  static const prometheus::Histogram::BucketBoundaries b{
      0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
      0.1,     0.25,   0.5,     1,      2.5,   5,      10,    30,   60};
  return b;
}

}  // namespace

metrics::metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      requests_total(BuildCounter()
                         .Name("tc_requests_total")
                         .Help("Finished client requests by model, provider and status class")
                         .Register(*registry_)),
      request_seconds(BuildHistogram()
                          .Name("tc_request_duration_seconds")
                          .Help("Client request latency, from request received to last byte")
                          .Register(*registry_)),
      upstream_seconds(BuildHistogram()
                           .Name("tc_upstream_duration_seconds")
                           .Help("Upstream call duration, from call start to its end")
                           .Register(*registry_)),
      upstream_ttft_seconds(BuildHistogram()
                                .Name("tc_upstream_ttft_seconds")
                                .Help("Upstream time to first byte of the response")
                                .Register(*registry_)),
      overhead_seconds(BuildHistogram()
                           .Name("tc_gateway_overhead_seconds")
                           .Help("Request latency minus upstream call duration")
                           .Register(*registry_)),
      upstream_in_flight(BuildGauge()
                             .Name("tc_upstream_in_flight")
                             .Help("Upstream calls in progress by provider")
                             .Register(*registry_)),
      upstream_tokens_total(BuildCounter()
                                .Name("tc_upstream_tokens_total")
                                .Help("Tokens upstreams reported in their usage, by model, "
                                      "provider and kind: prompt, cached (of prompt, served from "
                                      "the upstream's prefix cache: "
                                      "prompt_tokens_details.cached_tokens), completion")
                                .Register(*registry_)),
      requests_in_flight(BuildGauge()
                             .Name("tc_requests_in_flight")
                             .Help("Client requests received and not yet answered")
                             .Register(*registry_)),
      allocator_bytes(BuildGauge()
                          .Name("tc_allocator_bytes")
                          .Help("tcnode's thread-cache allocator (node/memory), read at scrape "
                                "time: slabs = address space made usable for small blocks, "
                                "kept for reuse and never returned (RSS counts only the pages "
                                "touched), central_free = free blocks parked on its central "
                                "lists; both 0 when TC_ALLOCATOR=system")
                          .Register(*registry_)),
      connections_open(BuildGauge()
                           .Name("tc_http_connections_open")
                           .Help("Open client connections on the data port, by I/O loop")
                           .Register(*registry_)),
      protocol_errors_total(BuildCounter()
                                .Name("tc_http_protocol_errors_total")
                                .Help("Requests refused by the HTTP layer (400/408/413/431)")
                                .Register(*registry_)),
      connections_refused_total(
          BuildCounter()
              .Name("tc_http_connections_refused_total")
              .Help("Connections closed at accept: server.max_connections open")
              .Register(*registry_)),
      upstream_failures_total(BuildCounter()
                                  .Name("tc_upstream_failures_total")
                                  .Help("Upstream calls that failed, by provider and reason")
                                  .Register(*registry_)),
      failovers_total(BuildCounter()
                          .Name("tc_upstream_failovers_total")
                          .Help("Requests moved to the next endpoint after a failure before the "
                                "first byte, by provider they left and provider they went to")
                          .Register(*registry_)),
      endpoint_health_score(BuildGauge()
                                .Name("tc_endpoint_health_score")
                                .Help("An endpoint's health score in [0,1] (availability x "
                                      "success x speed), read at scrape time")
                                .Register(*registry_)),
      endpoint_breaker_state(BuildGauge()
                                 .Name("tc_endpoint_breaker_state")
                                 .Help("An endpoint's circuit breaker: 0 closed, 1 half-open, 2 "
                                       "open")
                                 .Register(*registry_)),
      endpoint_in_flight(BuildGauge()
                             .Name("tc_endpoint_in_flight")
                             .Help("Upstream calls in progress to an endpoint, all loops")
                             .Register(*registry_)),
      queue_depth(BuildGauge()
                      .Name("tc_queue_depth")
                      .Help("Requests held in a model's batcher, by priority")
                      .Register(*registry_)),
      queue_wait_seconds(BuildHistogram()
                             .Name("tc_queue_wait_seconds")
                             .Help("Time a request waited in its model's batcher before dispatch, "
                                   "by priority")
                             .Register(*registry_)),
      dispatched_total(BuildCounter()
                           .Name("tc_dispatched_total")
                           .Help("Requests a model's batcher released to an endpoint, by "
                                 "priority (the dispatch rate)")
                           .Register(*registry_)),
      queue_refused_total(BuildCounter()
                              .Name("tc_queue_refused_total")
                              .Help("Requests a model's batcher answered 503, by priority and "
                                    "reason (queue_full, queue_timeout)")
                              .Register(*registry_)),
      batch_size(BuildHistogram()
                     .Name("tc_batch_size")
                     .Help("Requests a model's batcher released together")
                     .Register(*registry_)),
      merged_calls_total(BuildCounter()
                             .Name("tc_prompt_array_calls_total")
                             .Help("Merged prompt_array calls a model's batcher made, by outcome "
                                   "(ok: split and answered; failed: its requests went alone)")
                             .Register(*registry_)),
      merged_prompts_total(BuildCounter()
                               .Name("tc_prompt_array_prompts_total")
                               .Help("Requests sent in merged prompt_array calls, by outcome")
                               .Register(*registry_)),
      sim_utilisation(BuildGauge()
                          .Name("tc_sim_gpu_utilisation")
                          .Help("What an in-process simulated provider (a test double) reports as "
                                "its GPU utilisation over the last 10 s: the time average of "
                                "throughput(n)/throughput(max_batch); one simulated GPU per loop")
                          .Register(*registry_)),
      sim_active_sequences(BuildGauge()
                               .Name("tc_sim_active_sequences")
                               .Help("Sequences an in-process simulated provider decodes now")
                               .Register(*registry_)),
      streams_cut_total(BuildCounter()
                            .Name("tc_streams_cut_total")
                            .Help("Started streams that ended with an error event")
                            .Register(*registry_)),
      client_disconnects_total(BuildCounter()
                                   .Name("tc_client_disconnects_total")
                                   .Help("Requests whose client went away before the end")
                                   .Register(*registry_)),
      moderation_blocks_total(BuildCounter()
                                  .Name("tc_moderation_blocks_total")
                                  .Help("Requests (input) and answers (output) blocked by "
                                        "moderation")
                                  .Register(*registry_)),
      cache_hits_total(BuildCounter()
                           .Name("tc_cache_hits_total")
                           .Help("Requests answered by the cache, by model and tier")
                           .Register(*registry_)),
      cache_misses_total(BuildCounter()
                             .Name("tc_cache_misses_total")
                             .Help("Cacheable requests the cache could not answer, by model")
                             .Register(*registry_)),
      cache_dedup_joins_total(BuildCounter()
                                  .Name("tc_cache_dedup_joins_total")
                                  .Help("Requests that joined an identical one in flight")
                                  .Register(*registry_)),
      cache_lookup_seconds(BuildHistogram()
                               .Name("tc_cache_lookup_seconds")
                               .Help("Time from the first cache lookup to its verdict")
                               .Register(*registry_)),
      cache_saved_tokens_total(BuildCounter()
                                   .Name("tc_cache_saved_tokens_total")
                                   .Help("Upstream tokens not paid for thanks to the cache, "
                                         "by model and kind (prompt, completion)")
                                   .Register(*registry_)),
      cache_saved_cost_total(BuildCounter()
                                 .Name("tc_cache_saved_cost_total")
                                 .Help("Upstream cost not paid thanks to the cache, in the "
                                       "model's configured currency")
                                 .Register(*registry_)),
      cache_entries(BuildGauge()
                        .Name("tc_cache_entries")
                        .Help("Cache records held (exact answers plus template and semantic "
                              "pointers), read from the shards at scrape time")
                        .Register(*registry_)),
      cache_bytes(BuildGauge()
                      .Name("tc_cache_bytes")
                      .Help("Cache memory by kind: answers (bounded by cache.max_bytes) and "
                            "semantic_index (vectors and graph links)")
                      .Register(*registry_)),
      cache_semantic_entries(BuildGauge()
                                 .Name("tc_cache_semantic_entries")
                                 .Help("Vectors in the semantic indexes")
                                 .Register(*registry_)),
      cache_semantic_namespaces(BuildGauge()
                                    .Name("tc_cache_semantic_namespaces")
                                    .Help("Semantic indexes (one per namespace with entries)")
                                    .Register(*registry_)),
      cache_evictions(BuildGauge()
                          .Name("tc_cache_evictions")
                          .Help("Records evicted by the bounds since the node started")
                          .Register(*registry_)),
      cache_expirations(BuildGauge()
                            .Name("tc_cache_expirations")
                            .Help("Records expired by TTL since the node started")
                            .Register(*registry_)),
      cache_semantic_skipped(
          BuildGauge()
              .Name("tc_cache_semantic_skipped")
              .Help("Semantic searches and inserts left out since the node started because a "
                    "shard had spent cache.semantic_budget_pct of a thread on them (op: search "
                    "| insert)")
              .Register(*registry_)),
      budget_alerts_total(BuildCounter()
                              .Name("tc_budget_alerts_total")
                              .Help("Budgets crossing 50, 80 or 100 percent of themselves")
                              .Register(*registry_)),
      ledger_records_total(BuildCounter()
                               .Name("tc_ledger_records_total")
                               .Help("Usage records written to the ledger")
                               .Register(*registry_)),
      audit_records_total(BuildCounter()
                              .Name("tc_audit_records_total")
                              .Help("Audit records written to the store (hash-chained)")
                              .Register(*registry_)),
      records_behind(BuildGauge()
                         .Name("tc_records_behind")
                         .Help("Messages of usage and audit records that no answer waits for, "
                               "sent to the writers and not yet written (at "
                               "store.max_records_behind answers wait for theirs)")
                         .Register(*registry_)),
      embedder_calls_total(BuildCounter()
                               .Name("tc_embedder_calls_total")
                               .Help("/v1/embeddings calls of the openai embedder, by outcome "
                                     "(ok, transport, status, bad_answer, timeout)")
                               .Register(*registry_)),
      embedder_texts_total(BuildCounter()
                               .Name("tc_embedder_texts_total")
                               .Help("Distinct texts the openai embedder got a vector for")
                               .Register(*registry_)),
      embedder_refused_total(BuildCounter()
                                 .Name("tc_embedder_refused_total")
                                 .Help("Texts answered with an error at once, nothing sent, by "
                                       "reason (overloaded: cache.embedder_max_pending reached; "
                                       "too_long: over cache.embedder_max_text_bytes)")
                                 .Register(*registry_)),
      embedder_batch_size(BuildHistogram()
                              .Name("tc_embedder_batch_size")
                              .Help("Distinct texts per /v1/embeddings call of the openai "
                                    "embedder")
                              .Register(*registry_)),
      embedder_call_seconds(BuildHistogram()
                                .Name("tc_embedder_call_seconds")
                                .Help("Duration of the openai embedder's calls, by outcome")
                                .Register(*registry_)),
      embedder_pending(BuildGauge()
                           .Name("tc_embedder_pending")
                           .Help("Texts waiting for an embedding (gathering or in a call); "
                                 "bounded by cache.embedder_max_pending")
                           .Register(*registry_)),
      cache_loop_hits_total(BuildCounter()
                                .Name("tc_cache_loop_hits_total")
                                .Help("Exact hits the I/O loops answered themselves, without the "
                                      "connection actor (cache.loop_hits); also counted in "
                                      "tc_cache_hits_total")
                                .Register(*registry_)) {
  loop_hits = &cache_loop_hits_total.Add({});
  lookup_hit = &cache_lookup_seconds.Add({{"result", "hit"}}, latency_buckets());
  lookup_miss = &cache_lookup_seconds.Add({{"result", "miss"}}, latency_buckets());
}

namespace {

/// The series of one model's batcher, resolved once (no label lookups on its thread).
class batcher_series_impl final : public actors::batcher_metrics {
 public:
  batcher_series_impl(metrics& m, const std::string& model) {
    static const prometheus::Histogram::BucketBoundaries sizes{1, 2, 4, 8, 16, 32, 64, 128, 256};
    for (int p = 0; p < scheduling::priorities; ++p) {
      std::string name = "P";
      name += static_cast<char>('0' + p);
      const prometheus::Labels l{{"model", model}, {"priority", name}};
      depth_[p] = &m.queue_depth.Add(l);
      wait_[p] = &m.queue_wait_seconds.Add(l, latency_buckets());
      dispatched_[p] = &m.dispatched_total.Add(l);
      prometheus::Labels full = l;
      prometheus::Labels timeout = l;
      full.emplace("reason", "queue_full");
      timeout.emplace("reason", "queue_timeout");
      full_[p] = &m.queue_refused_total.Add(full);
      timeout_[p] = &m.queue_refused_total.Add(timeout);
    }
    batch_ = &m.batch_size.Add({{"model", model}}, sizes);
    for (int ok = 0; ok < 2; ++ok) {
      const prometheus::Labels l{{"model", model}, {"outcome", ok ? "ok" : "failed"}};
      merged_calls_[ok] = &m.merged_calls_total.Add(l);
      merged_prompts_[ok] = &m.merged_prompts_total.Add(l);
    }
  }
  void depth(int priority, size_t held) override {
    depth_[clamp(priority)]->Set(static_cast<double>(held));
  }
  void dispatched(int priority, double waited_s) override {
    wait_[clamp(priority)]->Observe(waited_s);
    dispatched_[clamp(priority)]->Increment();
  }
  void batch(size_t n) override { batch_->Observe(static_cast<double>(n)); }
  void refused(int priority, uint8_t why) override {
    (why == sched_queue_full ? full_ : timeout_)[clamp(priority)]->Increment();
  }
  void merged(size_t prompts, bool ok) override {
    merged_calls_[ok]->Increment();
    merged_prompts_[ok]->Increment(static_cast<double>(prompts));
  }

 private:
  static int clamp(int p) { return std::clamp(p, 0, scheduling::priorities - 1); }
  std::array<prometheus::Gauge*, scheduling::priorities> depth_{};
  std::array<prometheus::Histogram*, scheduling::priorities> wait_{};
  std::array<prometheus::Counter*, scheduling::priorities> dispatched_{};
  std::array<prometheus::Counter*, scheduling::priorities> full_{};
  std::array<prometheus::Counter*, scheduling::priorities> timeout_{};
  prometheus::Histogram* batch_ = nullptr;
  std::array<prometheus::Counter*, 2> merged_calls_{};    ///< failed, ok
  std::array<prometheus::Counter*, 2> merged_prompts_{};  ///< failed, ok
};

}  // namespace

std::shared_ptr<actors::batcher_metrics> batcher_series(metrics& m, const std::string& model) {
  return std::make_shared<batcher_series_impl>(m, model);
}

namespace {

/// The embedder's series, resolved once (no label lookups on its thread).
class embedder_series_impl final : public actors::embedder_metrics {
 public:
  explicit embedder_series_impl(metrics& m) {
    static const prometheus::Histogram::BucketBoundaries sizes{1,  2,   4,   8,   16,   32,
                                                               64, 128, 256, 512, 1024, 2048};
    for (size_t i = 0; i < outcomes; ++i) {
      const prometheus::Labels l{{"outcome", to_string(static_cast<actors::embed_outcome>(i))}};
      calls_[i] = &m.embedder_calls_total.Add(l);
      seconds_[i] = &m.embedder_call_seconds.Add(l, latency_buckets());
    }
    for (size_t i = 0; i < reasons; ++i) {
      refused_[i] = &m.embedder_refused_total.Add(
          {{"reason", to_string(static_cast<actors::embed_refusal>(i))}});
    }
    texts_ = &m.embedder_texts_total.Add({});
    batch_ = &m.embedder_batch_size.Add({}, sizes);
    pending_ = &m.embedder_pending.Add({});
  }
  void call(actors::embed_outcome outcome, size_t texts, double seconds) override {
    const auto i = std::min<size_t>(static_cast<size_t>(outcome), outcomes - 1);
    calls_[i]->Increment();
    seconds_[i]->Observe(seconds);
    batch_->Observe(static_cast<double>(texts));
    if (outcome == actors::embed_outcome::ok) texts_->Increment(static_cast<double>(texts));
  }
  void refused(actors::embed_refusal why) override {
    refused_[std::min<size_t>(static_cast<size_t>(why), reasons - 1)]->Increment();
  }
  void pending(size_t asks) override { pending_->Set(static_cast<double>(asks)); }

 private:
  static constexpr size_t outcomes = static_cast<size_t>(actors::embed_outcome::timeout) + 1;
  static constexpr size_t reasons = static_cast<size_t>(actors::embed_refusal::too_long) + 1;
  std::array<prometheus::Counter*, outcomes> calls_{};
  std::array<prometheus::Histogram*, outcomes> seconds_{};
  std::array<prometheus::Counter*, reasons> refused_{};
  prometheus::Counter* texts_ = nullptr;
  prometheus::Histogram* batch_ = nullptr;
  prometheus::Gauge* pending_ = nullptr;
};

}  // namespace

std::shared_ptr<actors::embedder_metrics> embedder_series(metrics& m) {
  return std::make_shared<embedder_series_impl>(m);
}

std::string metrics::serialize() const {
  return prometheus::TextSerializer{}.Serialize(registry_->Collect());
}

std::string_view status_class(int status) {
  static constexpr std::string_view classes[] = {"0xx", "1xx", "2xx", "3xx", "4xx", "5xx"};
  int c = status / 100;
  return c >= 1 && c <= 5 ? classes[c] : classes[0];
}

metrics::route_series& metrics_cache::route(std::string_view model, std::string_view provider) {
  auto by_model = routes_.find(model);
  if (by_model == routes_.end()) by_model = routes_.try_emplace(std::string(model)).first;
  auto& providers = by_model->second;
  auto it = providers.find(provider);
  if (it != providers.end()) return it->second;
  const std::string m = model.empty() ? "none" : std::string(model);
  const std::string p = provider.empty() ? "none" : std::string(provider);
  prometheus::Labels labels{{"model", m}, {"provider", p}};
  metrics::route_series r;
  r.model_label = m;
  r.provider_label = p;
  r.upstream_latency = &m_.upstream_seconds.Add(labels, latency_buckets());
  r.upstream_ttft = &m_.upstream_ttft_seconds.Add(labels, latency_buckets());
  r.overhead = &m_.overhead_seconds.Add(labels, latency_buckets());
  r.upstream_in_flight = &m_.upstream_in_flight.Add({{"provider", p}});
  auto kind = [&](const char* k) {
    prometheus::Labels l = labels;
    l.emplace("kind", k);
    return &m_.upstream_tokens_total.Add(l);
  };
  r.prompt_tokens = kind("prompt");
  r.cached_tokens = kind("cached");
  r.completion_tokens = kind("completion");
  return providers.emplace(std::string(provider), r).first->second;
}

metrics::cache_series& metrics_cache::cache(std::string_view model) {
  auto it = caches_.find(model);
  if (it != caches_.end()) return it->second;
  const std::string m(model);
  metrics::cache_series c;
  static constexpr const char* tiers[] = {"exact", "template", "semantic"};
  for (int t = 0; t < 3; ++t)
    c.hits[t] = &m_.cache_hits_total.Add({{"model", m}, {"tier", tiers[t]}});
  c.misses = &m_.cache_misses_total.Add({{"model", m}});
  c.dedup_joins = &m_.cache_dedup_joins_total.Add({{"model", m}});
  c.saved_prompt_tokens = &m_.cache_saved_tokens_total.Add({{"model", m}, {"kind", "prompt"}});
  c.saved_completion_tokens =
      &m_.cache_saved_tokens_total.Add({{"model", m}, {"kind", "completion"}});
  c.saved_cost = &m_.cache_saved_cost_total.Add({{"model", m}});
  return caches_.emplace(m, c).first->second;
}

void metrics_cache::finished(metrics::route_series& r, int status, double seconds) {
  const int c = status >= 100 && status < 600 ? status / 100 : 0;
  if (r.requests[c] == nullptr) {
    prometheus::Labels labels{{"model", r.model_label},
                              {"provider", r.provider_label},
                              {"status", std::string(status_class(status))}};
    r.requests[c] = &m_.requests_total.Add(labels);
    r.latency[c] = &m_.request_seconds.Add(labels, latency_buckets());
  }
  r.requests[c]->Increment();
  r.latency[c]->Observe(seconds);
}

}  // namespace tc::node
