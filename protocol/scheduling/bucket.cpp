// Token bucket with reservations, settlement and debt. The level is kept as a double and
// brought forward lazily from the last time it was computed.
#include "protocol/scheduling/bucket.hpp"

#include <algorithm>
#include <cmath>

namespace tc::scheduling {

namespace {

constexpr double us_per_s = 1e6;
constexpr double max_wait_us = 86'400.0 * us_per_s;  ///< one day
constexpr double max_debt_s = 3'600;                 ///< debt beyond this much refill is forgiven

/// An amount from a caller: NaN, infinite and negative count as 0.
double amount(double n) {
  return std::isfinite(n) && n > 0 ? n : 0;
}

}  // namespace

token_bucket::token_bucket(double rate_per_s, double burst) {
  set_rate(rate_per_s, burst, 0);
  started_ = false;
}

double token_bucket::level_at(int64_t now_us) const {
  if (!started_ || now_us <= last_us_) return tokens_;
  const double refilled = tokens_ + rate_ * (static_cast<double>(now_us - last_us_) / us_per_s);
  return std::min(burst_, refilled);
}

void token_bucket::refill(int64_t now_us) {
  tokens_ = level_at(now_us);
  if (!started_ || now_us > last_us_) last_us_ = now_us;
  started_ = true;
}

bool token_bucket::try_take(double n, int64_t now_us) {
  if (unlimited()) return true;
  n = amount(n);
  refill(now_us);
  if (tokens_ < std::min(n, burst_)) return false;
  tokens_ -= n;
  return true;
}

void token_bucket::give_back(double n, int64_t now_us) {
  if (unlimited()) return;
  refill(now_us);
  tokens_ = std::min(burst_, tokens_ + amount(n));
}

void token_bucket::settle(double reserved, double actual, int64_t now_us) {
  if (unlimited()) return;
  reserved = amount(reserved);
  actual = amount(actual);
  if (actual <= reserved) {
    give_back(reserved - actual, now_us);
    return;
  }
  refill(now_us);
  tokens_ = std::max(tokens_ - (actual - reserved), -rate_ * max_debt_s);
}

int64_t token_bucket::wait_us(double n, int64_t now_us) const {
  if (unlimited()) return 0;
  const double need = std::min(amount(n), burst_);
  if (level_at(now_us) >= need) return 0;
  // After time went backwards the refill resumes only from the last time seen.
  const int64_t from = started_ && last_us_ > now_us ? last_us_ : now_us;
  const double w = std::ceil((need - level_at(from)) / rate_ * us_per_s);
  if (!(w + static_cast<double>(from - now_us) < max_wait_us)) {
    return static_cast<int64_t>(max_wait_us);
  }
  auto wait = (from - now_us) + static_cast<int64_t>(w);
  // Rounding may be a microsecond off either way: settle on the first one try_take accepts.
  for (int i = 0; i < 4 && level_at(now_us + wait) < need; ++i) ++wait;
  for (int i = 0; i < 4 && wait > 0 && level_at(now_us + wait - 1) >= need; ++i) --wait;
  return wait;
}

void token_bucket::set_rate(double rate_per_s, double burst, int64_t now_us) {
  const bool was_unlimited = unlimited();
  if (!was_unlimited) refill(now_us);
  rate_ = std::isfinite(rate_per_s) && rate_per_s > 0 ? rate_per_s : 0;
  burst_ = std::isfinite(burst) && burst > 0 ? burst : std::max(1.0, rate_);
  tokens_ = was_unlimited ? burst_ : std::min(tokens_, burst_);
  if (was_unlimited) {
    last_us_ = now_us;
    started_ = true;
  }
}

double token_bucket::available(int64_t now_us) const {
  return unlimited() ? burst_ : level_at(now_us);
}

}  // namespace tc::scheduling
