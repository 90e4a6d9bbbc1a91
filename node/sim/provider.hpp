// The simulated GPU provider: a test double that answers the OpenAI API the way a real GPU
// endpoint would behave, and says so (system_fingerprint "tcsim-test-double"). Runs on one libuv
// loop as an upstream::transport (in-process provider of tcnode) and behind tools/tcsim.
//
// Model: up to max_batch sequences decode at once; with n active sequences each one advances at
// tokens_per_sec / (1 + batch_contention*(n-1)) tokens/s, so aggregate throughput rises with n
// and flattens (the batch-efficiency curve). Requests beyond max_batch wait for a slot.
// "GPU utilisation" is the time average of throughput(n) / throughput(max_batch).
//
// POST .../moderations answers in the shape of OpenAI's /v1/moderations, at once: a text is
// flagged exactly when it contains `sim-flag:<category>` (category = [a-z/_-]+), with that
// category true; its model is "tcsim-moderation (simulated, test double)".
//
// POST .../messages answers in the shape of Anthropic's Messages API (the test double of the
// anthropic provider type): the same generation and faults, Anthropic's message, events and
// error shape; ids start "msg_tcsim_" / "toolu_tcsim_" and the model is the one sent.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <uv.h>

#include "config/settings.hpp"
#include "node/upstream/transport.hpp"

namespace tc::sim {

/// Counters of one simulated endpoint.
struct sim_stats {
  uint64_t requests = 0;   ///< calls started (all endpoints)
  uint64_t completed = 0;  ///< calls that ran to a complete response
  uint64_t errors = 0;     ///< injected errors and outage answers
  uint64_t cancelled = 0;  ///< calls cancelled by the caller
  uint64_t tokens_generated = 0;
  uint32_t active_sequences = 0;
  uint32_t waiting = 0;           ///< calls waiting for a batch slot
  double utilisation = 0;         ///< since start, in [0,1]
  double utilisation_recent = 0;  ///< over the last 10 s, in [0,1]
};

class provider final : public upstream::transport {
 public:
  provider(uv_loop_t* loop, config::sim_settings settings);
  ~provider() override;

  /// The call's URL path selects the endpoint: .../chat/completions, .../completions,
  /// .../embeddings, .../moderations or .../models (GET). The body is an OpenAI request; the
  /// answer is what an OpenAI-compatible server would send (JSON, or SSE when "stream": true).
  /// Moderations flag a text containing `sim-flag:<category>` with that category (see the .cpp).
  /// .../messages takes and answers Anthropic's Messages API instead (errors in its shape).
  upstream::call_id start(upstream::call_request&& req, upstream::call_handlers&& h) override;
  void cancel(upstream::call_id id) override;
  void pause(upstream::call_id id) override;
  void resume(upstream::call_id id) override;
  std::size_t in_flight() const override;

  /// Replaces rates and faults at run time; calls in progress keep their own schedule.
  void update(const config::sim_settings& settings);
  const config::sim_settings& settings() const;

  sim_stats stats() const;
  /// Prometheus text exposition of stats() (tcsim's GET /metrics).
  std::string metrics_text() const;

  /// Closes the loop handles it owns (cancels calls in progress). Call before the loop ends.
  void close();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace tc::sim
