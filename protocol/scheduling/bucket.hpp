// The tokens-per-second capacity of one upstream endpoint (issue 6, DESIGN §2 step 8): a token
// bucket that requests reserve from by their estimate and settle against what they really
// used. Pure and deterministic (time is passed in); not thread-safe: one owner.
//
// - The bucket holds up to `burst` tokens and refills at `rate_per_s`. Rate 0 = unlimited:
//   every take succeeds and nothing is counted.
// - A reservation larger than the burst could never be covered; it is let through when the
//   bucket is full, leaving a debt. settle() may leave a debt too (a request used more than it
//   reserved). A debt is repaid by the refill before anything else is taken; a debt beyond one
//   hour of refill is forgiven (a bogus usage report must not stall an endpoint for days).
// - Time that goes backwards refills nothing; NaN, infinite or negative amounts count as 0.
#pragma once

#include <cstdint>

namespace tc::scheduling {

class token_bucket {
 public:
  /// rate_per_s <= 0 (or not finite): unlimited. burst <= 0 (or not finite): one second's
  /// worth of rate, at least 1. Starts full.
  token_bucket(double rate_per_s, double burst);

  /// Takes `n` tokens if the bucket holds them (or is full, for n above the burst).
  bool try_take(double n, int64_t now_us);
  /// Returns `n` unused tokens (a reservation that was not used at all), up to the burst.
  void give_back(double n, int64_t now_us);
  /// Settles a reservation of `reserved` tokens that used `actual`: charges the difference
  /// (a debt is allowed) or refunds it (up to the burst).
  void settle(double reserved, double actual, int64_t now_us);
  /// Microseconds until try_take(n) would succeed if nothing else happens: 0 if it would now.
  /// Capped at one day.
  int64_t wait_us(double n, int64_t now_us) const;
  /// Changes the rate and burst (same rules as the constructor), keeping the tokens held up to
  /// the new burst; from unlimited, the bucket starts full.
  void set_rate(double rate_per_s, double burst, int64_t now_us);

  /// Tokens held at `now_us` (negative while in debt); the burst when unlimited.
  double available(int64_t now_us) const;
  double rate_per_s() const { return rate_; }
  double burst() const { return burst_; }
  bool unlimited() const { return rate_ == 0; }

 private:
  void refill(int64_t now_us);
  double level_at(int64_t now_us) const;

  double rate_ = 0;   ///< tokens per second; 0 = unlimited
  double burst_ = 0;  ///< capacity
  double tokens_ = 0;
  int64_t last_us_ = 0;   ///< time tokens_ was computed for
  bool started_ = false;  ///< last_us_ is set
};

}  // namespace tc::scheduling
