// The batch window of one model (issue 6, DESIGN §2 step 8): when the queued requests are
// released as a batch, and which requests may share one. Pure and deterministic (time is
// passed in); not thread-safe: one owner (the model's batcher actor).
//
// Strategies, each also releasing at once when max_batch requests are queued:
// - time:     when the oldest has waited max_wait_us.
// - size:     when max_batch are queued, or the oldest has waited max_wait_us (a safety net).
// - adaptive: when the oldest has waited the adaptive window: min(max_wait_us,
//   latency_target_us / 4, the time the arrival rate predicts for max_batch requests to
//   arrive); 0 when traffic is light (the next request is not expected within that bound), so
//   a request alone goes at once.
// - priority: adaptive, and a waiting P0 request releases at once.
// The arrival rate is an EWMA (alpha 0.2) of the gaps between arrivals, each gap counted as at
// most twice the window bound, so one long silence does not mask a burst for long. Traffic is
// light while the EWMA gap, or the gap before the latest arrival, is at least the bound.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tc::scheduling {

enum class strategy : uint8_t { time, size, adaptive, priority };
/// "time" | "size" | "adaptive" | "priority" -> strategy; false otherwise.
bool parse_strategy(std::string_view name, strategy& out);
std::string_view to_string(strategy s);

struct batch_settings {
  strategy s = strategy::adaptive;
  uint32_t max_wait_us = 5'000;         ///< longest a request waits for others
  uint32_t max_batch = 32;              ///< released at once when this many are queued; 0 = 1
  uint32_t latency_target_us = 20'000;  ///< adaptive windows stay within a quarter of it
};

/// Decides when the queued requests of a model are released as a batch.
class batch_window {
 public:
  explicit batch_window(batch_settings s);

  /// Feeds the arrival-rate estimate: one request arrived at `now_us`.
  void arrived(int64_t now_us);
  /// True when a batch should be released now, given `queued` requests, the enqueue time of
  /// the oldest, and whether a P0 request waits. Otherwise `next_check_us` is when to ask
  /// again (INT64_MAX when nothing is queued: ask at the next arrival).
  bool due(int64_t now_us, size_t queued, int64_t oldest_enqueued_us, bool p0_waiting,
           int64_t& next_check_us) const;
  /// The window in force: max_wait_us for time and size, the adaptive window otherwise.
  uint32_t current_wait_us() const;

  const batch_settings& settings() const { return settings_; }

 private:
  batch_settings settings_;
  double gap_us_ = 0;        ///< EWMA of the gaps between arrivals
  int64_t last_gap_us_ = 0;  ///< the gap before the latest arrival
  int64_t last_arrival_us_ = 0;
  uint32_t arrivals_ = 0;  ///< 0, 1, or 2 meaning "two or more"
};

/// What makes requests compatible in one batch: the same model, max_tokens in the same
/// power-of-two bucket (so a batch's sequences end at similar lengths and a long one does not
/// hold the slot of many short ones), and the same sampling parameters (a provider's batch
/// call may take one set per batch). Sampling values are compared to 1/1000.
struct batch_key {
  std::string model;
  uint64_t max_tokens_ceil = 0;    ///< max_tokens rounded up to a power of two; 0 = not set
  int32_t temperature_milli = -1;  ///< temperature x 1000, rounded; -1 = not set
  int32_t top_p_milli = -1;        ///< top_p x 1000, rounded; -1 = not set
  uint32_t n = 1;                  ///< choices per request
  friend bool operator==(const batch_key&, const batch_key&) = default;
};

/// For unordered containers of batch_key.
struct batch_key_hash {
  size_t operator()(const batch_key& k) const noexcept;
};

/// The key of a request. max_tokens 0 = not set; NaN or negative sampling values count as not
/// set; n 0 counts as 1.
batch_key key_of(std::string_view model, uint32_t max_tokens, std::optional<double> temperature,
                 std::optional<double> top_p, uint32_t n = 1);

}  // namespace tc::scheduling
