// The tenant_quota actor: rate limits, concurrency and budgets for a shard of the tenants
// (DESIGN §2 step 2 and step 13). Every scope of a request lives in the shard that owns its
// tenant, so one message checks and reserves all of them at once: no counter is ever checked
// against a local copy on another node (DESIGN §11).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>

#include <caf/all.hpp>

#include "actors/quota_book.hpp"
#include "protocol/messages.hpp"

namespace tc::actors {

using quota_settle_atom = caf::atom_constant<caf::atom("q_settle")>;
using quota_spend_atom = caf::atom_constant<caf::atom("q_spend")>;
using quota_sweep_atom = caf::atom_constant<caf::atom("q_sweep")>;

/// What the node wants to hear from the shards. Called on the actor's thread.
struct quota_hooks {
  std::function<void(const budget_alert&)> on_alert;  ///< log, metric, webhook
  std::function<void(size_t scopes, size_t reservations)> on_sweep;
};

struct tenant_quota_state {
  quota_book book;
  std::shared_ptr<const quota_hooks> hooks;
  int64_t reservation_max_age_ms = 0;
  static inline const char* name = "tenant_quota";
};

/// Messages:
///   quota_ask -> quota_verdict                  step 2: check and reserve every scope
///   (quota_settle_atom, ticket, tokens, cost_micros)  step 13: settle to actual usage
///   (quota_spend_atom, scope, day, day_micros, month_micros)  seed spend from the ledger
///   (quota_sweep_atom)                          drops lost reservations (every 10 s, by itself)
/// `reservation_max_age_ms`: a reservation never settled is dropped after this long (a request
/// outlives no total timeout, so the longest total timeout plus a margin).
caf::behavior tenant_quota(caf::stateful_actor<tenant_quota_state>* self, uint32_t shard,
                           std::shared_ptr<const quota_hooks> hooks,
                           int64_t reservation_max_age_ms);

/// The shard (of `shards`) that owns a tenant's counters: FNV-1a, the same on every node.
inline uint32_t tenant_shard(std::string_view tenant, size_t shards) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : tenant) h = (h ^ c) * 1099511628211ULL;
  return shards == 0 ? 0 : static_cast<uint32_t>(h % shards);
}

/// Unix milliseconds now (the books' clock).
int64_t unix_ms();

}  // namespace tc::actors
