// The admin API's calls under /v1/ (docs/api.md, "Admin port"): admin-token authentication and
// roles, then tenants, projects, keys, admin tokens, prices, usage, the cache and the audit trail.
// Runs on the admin port's threads (cpp-httplib): it may block, asking actors and waiting for them.
// Reads come from the published account directory; changes go to the accounts actor.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <caf/all.hpp>

#include "actors/accounts.hpp"
#include "node/admin.hpp"
#include "protocol/accounts/accounts.hpp"

namespace tc::node {

struct admin_api_deps {
  caf::actor_system* system = nullptr;
  std::shared_ptr<actors::directory_cell> directory;
  caf::actor accounts;         ///< the accounts actor
  caf::actor ledger;           ///< the ledger actor
  caf::actor audit;            ///< the audit_writer; unset: every /v1/audit call is 503
  std::string bootstrap_hash;  ///< secret hash of the owner token from the environment ("" none)
  std::vector<accounts::price> config_prices;  ///< list prices from the config file
  /// routing.groups from the config file.
  struct group_config {
    std::string name;
    std::vector<std::pair<std::string, uint32_t>> members;  ///< config order; first = stable
  };
  std::vector<group_config> config_groups;
  std::function<std::string()> cache_stats;  ///< null: no cache
  std::function<std::pair<int, std::string>(const std::string&)> cache_invalidate;
  /// debug.fault_injection: sets faults from a JSON body ("" reads them); null when off.
  std::function<std::pair<int, std::string>(const std::string&)> debug_faults;
};

/// Answers one admin call. Thread-safe; blocks while an actor is asked (at most 10 s).
admin_answer handle_admin(const admin_api_deps& deps, const admin_call& call);

}  // namespace tc::node
