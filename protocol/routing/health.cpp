// One endpoint's health: EWMAs, a bucketed sliding window of outcome counts, Retry-After and the
// circuit breaker (the rules and the score are in the header).
#include "protocol/routing/health.hpp"

#include <algorithm>
#include <cmath>

namespace tc::routing {

namespace {

constexpr uint32_t max_open_ms = 60'000;
constexpr uint32_t default_retry_after_ms = 1'000;

health_settings sanitized(health_settings s) {
  const health_settings d;
  if (!(s.ewma_alpha > 0 && s.ewma_alpha <= 1)) s.ewma_alpha = d.ewma_alpha;
  if (s.window_ms < 10) s.window_ms = d.window_ms;
  if (s.min_samples == 0) s.min_samples = 1;
  if (!(s.open_error_rate > 0)) s.open_error_rate = d.open_error_rate;
  if (s.open_consecutive == 0) s.open_consecutive = d.open_consecutive;
  if (s.open_ms == 0) s.open_ms = d.open_ms;
  if (s.half_open_probes == 0) s.half_open_probes = 1;
  if (!(s.latency_target_ms > 0) || !std::isfinite(s.latency_target_ms)) {
    s.latency_target_ms = d.latency_target_ms;
  }
  return s;
}

bool failure(outcome_kind k) {
  return k == outcome_kind::server_error || k == outcome_kind::connect_error ||
         k == outcome_kind::timeout;
}

void learn(double& ewma, double sample, double alpha) {
  if (!(sample >= 0) || !std::isfinite(sample)) return;
  ewma = ewma < 0 ? sample : ewma + alpha * (sample - ewma);
}

/// now_ms + ms, saturating (a clock near its end never wraps to the past).
int64_t later(int64_t now_ms, uint32_t ms) {
  return now_ms > INT64_MAX - int64_t{ms} ? INT64_MAX : now_ms + ms;
}

int64_t floor_div(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

}  // namespace

endpoint_health::endpoint_health(health_settings s)
    : s_(sanitized(s)), bucket_ms_(s_.window_ms / buckets), open_period_ms_(s_.open_ms) {}

int64_t endpoint_health::slot_of(int64_t now_ms) const {
  // Times before -2^62 ms count as -2^62: slot arithmetic then never overflows.
  const int64_t t = std::max(now_ms, -(int64_t{1} << 62));
  return std::max(floor_div(t, bucket_ms_), newest_slot_);
}

endpoint_health::window_counts endpoint_health::counts(int64_t now_ms) const {
  const int64_t now_slot = slot_of(now_ms);
  window_counts c;
  for (const bucket& b : window_) {
    if (b.slot == INT64_MIN || b.slot <= now_slot - buckets) continue;
    c.outcomes += b.outcomes;
    c.failures += b.failures;
    c.rate_limited += b.rate_limited;
  }
  return c;
}

void endpoint_health::open(int64_t now_ms, uint32_t period_ms) {
  state_ = breaker_state::open;
  open_period_ms_ = period_ms;
  open_until_ms_ = later(now_ms, period_ms);
  probes_in_flight_ = 0;
}

breaker_state endpoint_health::state_at(int64_t now_ms) const {
  if (state_ == breaker_state::open && now_ms >= open_until_ms_) return breaker_state::half_open;
  return state_;
}

void endpoint_health::record(int64_t now_ms, outcome_kind k, double latency_ms, double ttft_ms,
                             uint32_t retry_after_ms) {
  ++samples_;
  if (k == outcome_kind::ok || k == outcome_kind::timeout) {
    learn(latency_ms_, latency_ms, s_.ewma_alpha);
    learn(ttft_ms_, ttft_ms, s_.ewma_alpha);
  }

  const breaker_state state = state_at(now_ms);
  const bool failed = failure(k);
  if (k == outcome_kind::rate_limited) {
    const uint32_t wait = retry_after_ms == 0 ? default_retry_after_ms : retry_after_ms;
    retry_after_until_ms_ = std::max(retry_after_until_ms_, later(now_ms, wait));
    if (state == breaker_state::half_open) release_probe();
  } else if (!failed) {
    consecutive_failures_ = 0;
    if (state == breaker_state::half_open) {
      state_ = breaker_state::closed;
      open_period_ms_ = s_.open_ms;
      probes_in_flight_ = 0;
      window_.fill(bucket{});  // the failures that opened it are history now
    }
  } else {
    ++consecutive_failures_;
  }

  const int64_t slot = slot_of(now_ms);
  newest_slot_ = slot;
  bucket& b = window_[static_cast<size_t>(((slot % buckets) + buckets) % buckets)];
  if (b.slot != slot) b = bucket{slot, 0, 0, 0};
  ++b.outcomes;
  if (k == outcome_kind::rate_limited) ++b.rate_limited;
  if (!failed) return;

  ++b.failures;
  if (state == breaker_state::half_open) {
    const uint64_t doubled = uint64_t{open_period_ms_} * 2;
    open(now_ms,
         static_cast<uint32_t>(std::min<uint64_t>(doubled, std::max(max_open_ms, s_.open_ms))));
    return;
  }
  if (state == breaker_state::open) return;

  const window_counts c = counts(now_ms);
  const uint64_t answered = c.outcomes - c.rate_limited;
  const bool by_rate =
      answered >= s_.min_samples &&
      static_cast<double>(c.failures) >= s_.open_error_rate * static_cast<double>(answered);
  if (consecutive_failures_ >= s_.open_consecutive || by_rate) open(now_ms, s_.open_ms);
}

bool endpoint_health::admit(int64_t now_ms) {
  if (now_ms < retry_after_until_ms_) return false;
  const breaker_state state = state_at(now_ms);
  if (state == breaker_state::closed) return true;
  if (state == breaker_state::open) return false;
  if (state_ == breaker_state::open) {  // the open period has just passed
    state_ = breaker_state::half_open;
    probes_in_flight_ = 0;
  }
  if (probes_in_flight_ >= s_.half_open_probes) return false;
  ++probes_in_flight_;
  return true;
}

void endpoint_health::release_probe() {
  if (state_ == breaker_state::half_open && probes_in_flight_ > 0) --probes_in_flight_;
}

health_snapshot endpoint_health::snapshot(int64_t now_ms) const {
  health_snapshot h;
  h.latency_ms = latency_ms_;
  h.ttft_ms = ttft_ms_;
  h.samples = samples_;
  h.retry_after_until_ms = retry_after_until_ms_;
  h.breaker = state_at(now_ms);

  const window_counts c = counts(now_ms);
  const auto damped = [&](uint64_t n) {
    return static_cast<double>(std::max<uint64_t>(n, s_.min_samples));
  };
  h.error_rate = static_cast<double>(c.failures) / damped(c.outcomes - c.rate_limited);
  h.rate_limited_rate = static_cast<double>(c.rate_limited) / damped(c.outcomes);

  // A breaker found open here has probe slots only if its period has passed since it opened.
  const uint32_t probes = state_ == breaker_state::half_open ? probes_in_flight_ : 0;
  double availability = 1;
  if (h.breaker == breaker_state::open) {
    availability = 0;
  } else if (h.breaker == breaker_state::half_open) {
    availability = probes < s_.half_open_probes ? 0.5 : 0;
  }
  if (now_ms < retry_after_until_ms_) availability = 0;
  h.available = availability > 0;

  const double success = (1 - h.error_rate) * (1 - h.rate_limited_rate / 2);
  const double speed = latency_ms_ < 0 ? 1 : 1 / (1 + latency_ms_ / s_.latency_target_ms);
  h.score = std::clamp(availability * success * speed, 0.0, 1.0);
  return h;
}

}  // namespace tc::routing
