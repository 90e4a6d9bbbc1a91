// The counters behind tenant_quota (issue 4): rolling request and token windows, concurrency and
// money budgets for every scope of a request (tenant, project, key, the tenant's model), checked
// and reserved in one step, settled to actual usage afterwards. Pure logic with an injected
// clock (`now_ms`, unix milliseconds): owned by one tenant_quota actor, never shared.
//
// Windows are rolling, counted in buckets: rpm and tpm in 60 one-second buckets, rpd in 24
// one-hour buckets, the burst pay-back in 10 one-minute buckets. Budgets are per UTC day and
// UTC month.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "protocol/accounts/accounts.hpp"
#include "protocol/messages.hpp"

namespace tc::actors {

// quota_scope, quota_ask and quota_verdict cross actor boundaries: protocol/messages.hpp.
using tc::quota_ask;
using tc::quota_scope;
using tc::quota_verdict;

/// A budget crossing 50, 80 or 100 % of itself, reported once per period.
struct budget_alert {
  std::string scope;     ///< quota_scope::id
  std::string period;    ///< "day" | "month"
  uint32_t percent = 0;  ///< 50 | 80 | 100
  int64_t spent_micros = 0;
  int64_t budget_micros = 0;
};

class quota_book {
 public:
  quota_book();
  ~quota_book();
  quota_book(quota_book&&) noexcept;
  quota_book& operator=(quota_book&&) noexcept;

  /// Checks every scope of `ask` and, if all admit it, reserves one request, `ask.tokens`,
  /// one concurrency slot and `ask.cost_micros` in each. Denies without reserving anything
  /// otherwise. Order of checks per scope: concurrency, rpm, rpd, tpm, budgets.
  quota_verdict reserve(const quota_ask& ask, int64_t now_ms);

  /// Ends a granted request: the token reservation becomes `tokens` (the actual input + output
  /// usage, counted in the minute it was reserved), the held cost becomes `cost_micros` spent,
  /// and the concurrency slot is freed. Unknown tickets are ignored (settled twice, or swept).
  /// Returns the budget alerts this spend crossed.
  std::vector<budget_alert> settle(uint64_t ticket, uint64_t tokens, int64_t cost_micros,
                                   int64_t now_ms);

  /// Seeds spend already recorded (by the ledger, before a restart) for a scope's day or month.
  /// `day` is days since the unix epoch (UTC); the month is the one containing it.
  void add_spend(const std::string& scope, int64_t day, int64_t spent_day_micros,
                 int64_t spent_month_micros);

  /// Drops reservations older than `max_age_ms` (their settle never came: the connection or its
  /// node was lost) and scopes with nothing left to count. Call periodically.
  void sweep(int64_t now_ms, int64_t max_age_ms);

  /// Scopes and open reservations held (for metrics and tests).
  size_t scopes() const;
  size_t reservations() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace tc::actors
