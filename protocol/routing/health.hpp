// One upstream endpoint's live health (issue 6): EWMA latency and TTFT, error and 429 rates over
// a sliding window, Retry-After, and a circuit breaker, folded into one score. Pure logic with an
// injected monotonic clock (`now_ms`); owned by one provider_health actor, never shared.
//
// Memory is fixed: two EWMAs, 10 window buckets of counts and the breaker's few fields, however
// many outcomes are recorded.
//
// Outcomes: a failure (server_error, connect_error, timeout) counts against the breaker;
// client_error is the caller's fault and counts as a success; rate_limited is its own signal: it
// holds the endpoint back until its Retry-After (1 s when absent) and lowers the score, but never
// opens the breaker nor closes it, and neither adds to nor breaks a run of failures.
//
// Breaker: closed -> open after `open_consecutive` failures in a row, or when the window holds
// at least `min_samples` answered outcomes (all but 429s) and failures / answered >=
// `open_error_rate`. open -> half-open once the open period has passed: `admit` then lets
// `half_open_probes` requests through. In half-open the next outcome decides (a probe's outcome
// cannot be told from a late one): a success closes the breaker, resets the open period to
// `open_ms` and starts an empty window; a failure re-opens it for twice the last period (at most
// max(60 s, open_ms)). Outcomes while open change the counts, not the state.
//
// Score, in [0,1]:  score = availability * success * speed, where
//   availability = 0 while open or before retry_after_until, 0.5 while half-open with a probe
//                  slot free (0 without one), 1 when closed;
//   success      = (1 - error_rate) * (1 - rate_limited_rate / 2);
//   speed        = 1 / (1 + latency_ms / latency_target_ms), 1 before any latency is known;
//   error_rate        = failures in window / max(answered in window, min_samples),
//   rate_limited_rate = 429s in window / max(outcomes in window, min_samples):
// a window of few outcomes is damped as if the missing ones had succeeded, and 429s do not dilute
// the failures. Within one breaker state and Retry-After, another failure, 429 or slower sample
// never raises the score, another success never lowers it.
#pragma once

#include <array>
#include <cstdint>

namespace tc::routing {

/// What became of one request sent to the endpoint.
enum class outcome_kind : uint8_t {
  ok,
  server_error,   ///< 5xx
  rate_limited,   ///< 429
  connect_error,  ///< no connection (refused, DNS, TLS)
  timeout,
  client_error,  ///< 4xx other than 429: the caller's fault, a success for health
};

/// How an endpoint's health is judged. Values out of the range given are replaced by the default
/// (min_samples 0 by 1), never asserted on.
struct health_settings {
  double ewma_alpha = 0.2;           ///< weight of a new sample in latency/TTFT EWMAs, (0,1]
  uint32_t window_ms = 30'000;       ///< error / 429 rates are over this sliding window, >= 10
  uint32_t min_samples = 5;          ///< the failure rate counts over >= this many answered
  double open_error_rate = 0.5;      ///< breaker opens at this failure rate in window; > 1: never
  uint32_t open_consecutive = 5;     ///< ...or after this many failures in a row, >= 1
  uint32_t open_ms = 5'000;          ///< first open period; doubles on a failed probe, max 60 s
  uint32_t half_open_probes = 1;     ///< requests let through while half-open, >= 1
  double latency_target_ms = 2'000;  ///< latency at which the latency part of the score is 0.5
};

enum class breaker_state : uint8_t { closed, open, half_open };

/// What the router reads: the endpoint's health at one instant.
struct health_snapshot {
  double latency_ms = -1;        ///< EWMA of ok/timeout latencies; -1 before any
  double ttft_ms = -1;           ///< EWMA of time to first token; -1 before any
  double error_rate = 0;         ///< failures in window / max(answered, min_samples)
  double rate_limited_rate = 0;  ///< 429s in window / max(outcomes, min_samples)
  breaker_state breaker = breaker_state::closed;
  int64_t retry_after_until_ms = 0;  ///< no request before this (0: never rate limited)
  double score = 1;                  ///< [0,1], formula above
  uint64_t samples = 0;              ///< outcomes recorded since construction
  bool available = true;             ///< `admit` would let a request go now
};

class endpoint_health {
 public:
  explicit endpoint_health(health_settings s = {});

  /// Records one outcome at `now_ms`. `latency_ms`/`ttft_ms` < 0 (or not finite) = not measured;
  /// the EWMAs learn only from ok and timeout outcomes (a fast 4xx/429/5xx says nothing about
  /// how long an answer takes). `retry_after_ms` is read for rate_limited only (0 = absent).
  void record(int64_t now_ms, outcome_kind k, double latency_ms, double ttft_ms,
              uint32_t retry_after_ms = 0);

  /// May a request go now? False while open or before Retry-After; when the open period has
  /// passed, turns half-open and takes one of the probe slots (false when none is left).
  bool admit(int64_t now_ms);

  /// A probe ended without an outcome (e.g. client cancelled): frees its slot.
  void release_probe();

  /// The health at `now_ms` (an open breaker whose period has passed reads as half-open).
  health_snapshot snapshot(int64_t now_ms) const;

 private:
  static constexpr int buckets = 10;
  struct bucket {
    int64_t slot = INT64_MIN;  // now_ms / bucket_ms_ of the counts held; INT64_MIN = empty
    uint32_t outcomes = 0;
    uint32_t failures = 0;
    uint32_t rate_limited = 0;
  };
  struct window_counts {
    uint64_t outcomes = 0;
    uint64_t failures = 0;
    uint64_t rate_limited = 0;
  };

  int64_t slot_of(int64_t now_ms) const;
  window_counts counts(int64_t now_ms) const;
  void open(int64_t now_ms, uint32_t period_ms);
  breaker_state state_at(int64_t now_ms) const;

  health_settings s_;
  int64_t bucket_ms_;
  std::array<bucket, buckets> window_{};
  int64_t newest_slot_ = INT64_MIN;  // time never runs backwards in the window
  double latency_ms_ = -1;
  double ttft_ms_ = -1;
  uint64_t samples_ = 0;
  uint32_t consecutive_failures_ = 0;
  breaker_state state_ = breaker_state::closed;
  int64_t open_until_ms_ = 0;
  uint32_t open_period_ms_;  // the period the breaker opened for last
  uint32_t probes_in_flight_ = 0;
  int64_t retry_after_until_ms_ = 0;
};

}  // namespace tc::routing
