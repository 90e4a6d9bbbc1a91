// The ledger's records and aggregates over the node's store (issue 4). Shared by the detached
// ledger actor and the detached audit writer (which appends the usage records that travel with
// audit records); every call may block on disk, and calls from several threads are serialized.
// Records are idempotent by request id; every append writes records and the aggregates they
// change in one atomic batch.
//
// Rows (family ledger):
//   r/<request_id>                                   -> billing::encode(record)
//   a/<day:8 digits>/<tenant>/<project>/<key>/<model>/<provider>  -> totals (versioned bytes)
//   s/<day:8 digits>/<request_id>                    -> "" (records by day, for exports)
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "actors/store.hpp"
#include "protocol/billing/usage.hpp"

namespace tc::actors {

class ledger_book {
 public:
  /// Loads the aggregates of the store (they are kept in memory: one writer, no read-modify-
  /// write on disk). `error` is set if loading failed.
  ledger_book(store& db, store::status& error);

  /// Writes the records not already present (by request id), with their aggregate updates, in
  /// one batch. Returns the write's status; `added` (if given) is how many were new. A record
  /// whose id is present is skipped silently (a retry of a settled request). With `with`, its
  /// operations go in the same atomic batch (the audit writer's chained records); they are
  /// written even when no record is new. `with` is left as it was (a failed write may be
  /// retried with it).
  store::status append(const std::vector<billing::usage_record>& records, size_t* added = nullptr,
                       const store::batch* with = nullptr);

  /// Totals grouped as the query asks, from the aggregates (no record scan).
  billing::usage_report report(const billing::usage_query& q) const;

  /// The records of days [from_day, to_day] in (day, request id) order, filtered by tenant if
  /// not empty; stops after `limit` records (0 = no limit).
  store::status records(int64_t from_day, int64_t to_day, const std::string& tenant, size_t limit,
                        std::vector<billing::usage_record>& out) const;

  /// What a tenant was charged on a day and in that day's month (for seeding budgets).
  struct spend {
    int64_t day_micros = 0;
    int64_t month_micros = 0;
  };
  spend spent(const std::string& tenant, int64_t day) const;
  /// Every tenant's spend for `day` and its month.
  std::map<std::string, spend> spent_all(int64_t day) const;

  /// The spend of every quota scope with usage in `day`'s month, by the scope ids tenant_quota
  /// counts under ("t:<tenant>", "p:<tenant>/<project>", "k:<key id>"), with each scope's
  /// tenant (which shard owns it).
  struct scope_spend {
    std::string tenant;
    std::string scope;
    spend amount;
  };
  std::vector<scope_spend> spent_by_scope(int64_t day) const;

  /// Records written since open (for metrics).
  uint64_t appended() const { return appended_.load(std::memory_order_relaxed); }

 private:
  struct agg_key {
    int64_t day;
    std::string tenant, project, key, model, provider;
    auto operator<=>(const agg_key&) const = default;
  };
  store& db_;
  mutable std::mutex mu_;  ///< over aggregates_ and each append's read-modify-write
  std::map<agg_key, billing::usage_totals> aggregates_;
  std::atomic<uint64_t> appended_ = 0;
};

}  // namespace tc::actors
