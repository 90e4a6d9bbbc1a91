// The batch window (time, size, adaptive, priority) and the batch key.
#include "protocol/scheduling/batch.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <functional>
#include <limits>

namespace tc::scheduling {

namespace {

constexpr double alpha = 0.2;  ///< weight of the newest gap in the EWMA

/// x * 1000 rounded, or -1 when not set, NaN or negative. Large values saturate.
int32_t milli(std::optional<double> x) {
  if (!x || !(*x >= 0)) return -1;
  const double m = std::round(*x * 1000);
  return m >= 1e9 ? 1'000'000'000 : static_cast<int32_t>(m);
}

}  // namespace

bool parse_strategy(std::string_view name, strategy& out) {
  for (strategy s : {strategy::time, strategy::size, strategy::adaptive, strategy::priority}) {
    if (name == to_string(s)) {
      out = s;
      return true;
    }
  }
  return false;
}

std::string_view to_string(strategy s) {
  switch (s) {
    case strategy::time:
      return "time";
    case strategy::size:
      return "size";
    case strategy::adaptive:
      return "adaptive";
    case strategy::priority:
      return "priority";
  }
  return "unknown";
}

batch_window::batch_window(batch_settings s) : settings_(s) {
  if (settings_.max_batch == 0) settings_.max_batch = 1;
}

void batch_window::arrived(int64_t now_us) {
  if (arrivals_ == 0) {
    arrivals_ = 1;
    last_arrival_us_ = now_us;
    return;
  }
  const int64_t bound = std::min<int64_t>(settings_.max_wait_us, settings_.latency_target_us / 4);
  last_gap_us_ = now_us > last_arrival_us_ ? now_us - last_arrival_us_ : 0;
  last_arrival_us_ = std::max(last_arrival_us_, now_us);
  const double gap = static_cast<double>(std::min<int64_t>(last_gap_us_, 2 * bound));
  gap_us_ = arrivals_ == 1 ? gap : alpha * gap + (1 - alpha) * gap_us_;
  arrivals_ = 2;
}

uint32_t batch_window::current_wait_us() const {
  if (settings_.s == strategy::time || settings_.s == strategy::size) {
    return settings_.max_wait_us;
  }
  const uint32_t bound = std::min(settings_.max_wait_us, settings_.latency_target_us / 4);
  if (arrivals_ < 2 || bound == 0) return 0;
  if (gap_us_ >= bound || last_gap_us_ >= bound) return 0;  // light: nobody else expected
  const double fill = gap_us_ * (settings_.max_batch - 1);
  return fill >= bound ? bound : static_cast<uint32_t>(std::lround(fill));
}

bool batch_window::due(int64_t now_us, size_t queued, int64_t oldest_enqueued_us, bool p0_waiting,
                       int64_t& next_check_us) const {
  next_check_us = now_us;
  if (queued == 0) {
    next_check_us = std::numeric_limits<int64_t>::max();
    return false;
  }
  if (queued >= settings_.max_batch) return true;
  if (settings_.s == strategy::priority && p0_waiting) return true;
  const int64_t window = current_wait_us();
  const int64_t waited = now_us > oldest_enqueued_us ? now_us - oldest_enqueued_us : 0;
  if (waited >= window) return true;
  next_check_us = now_us + (window - waited);
  return false;
}

size_t batch_key_hash::operator()(const batch_key& k) const noexcept {
  size_t h = std::hash<std::string>{}(k.model);
  auto mix = [&h](uint64_t v) {
    h ^= std::hash<uint64_t>{}(v) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  };
  mix(k.max_tokens_ceil);
  mix(static_cast<uint32_t>(k.temperature_milli));
  mix(static_cast<uint32_t>(k.top_p_milli));
  mix(k.n);
  return h;
}

batch_key key_of(std::string_view model, uint32_t max_tokens, std::optional<double> temperature,
                 std::optional<double> top_p, uint32_t n) {
  batch_key k;
  k.model.assign(model);
  k.max_tokens_ceil = max_tokens == 0 ? 0 : std::bit_ceil(uint64_t{max_tokens});
  k.temperature_milli = milli(temperature);
  k.top_p_milli = milli(top_p);
  k.n = n == 0 ? 1 : n;
  return k;
}

}  // namespace tc::scheduling
