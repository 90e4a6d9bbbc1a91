// The accounts actor: the one writer of the account tables (tenants, projects, API keys, admin
// tokens, stored prices). It persists every change in the node's store (families `tenants` and
// `keys`) and then publishes a new immutable `directory`, which every other thread reads without
// asking anyone: the auth step of each request, and the admin port's GETs.
//
// Spawned detached (it blocks on RocksDB). Without a store (store.path = "") the tables live in
// memory only and are lost at exit.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include <caf/all.hpp>

#include "actors/published.hpp"
#include "actors/store.hpp"
#include "protocol/accounts/accounts.hpp"
#include "protocol/messages.hpp"

namespace tc::actors {

/// One version of the account tables. Never changed once published.
struct directory {
  uint64_t version = 0;
  std::map<std::string, accounts::tenant> tenants;
  std::map<std::string, accounts::project> projects;          ///< by "tenant/project"
  std::map<std::string, accounts::api_key> keys;              ///< by id
  std::unordered_map<std::string, std::string> key_by_hash;   ///< secret hash -> key id
  std::map<std::string, accounts::admin_token> admin_tokens;  ///< by id
  std::unordered_map<std::string, std::string> admin_by_hash;
  std::map<std::string, accounts::price> prices;        ///< stored overrides, by "provider/model"
  std::map<std::string, accounts::model_split> splits;  ///< stored group weights, by group

  const accounts::tenant* tenant(const std::string& id) const;
  const accounts::project* project(const std::string& tenant, const std::string& id) const;
  const accounts::api_key* key(const std::string& id) const;
  /// The key whose secret hashes to `hash`, or null.
  const accounts::api_key* key_by_secret_hash(const std::string& hash) const;
  const accounts::admin_token* admin_by_secret_hash(const std::string& hash) const;
};

/// The current directory (an empty one at first); read from any thread, set by the accounts actor.
using directory_cell = published<directory>;

struct accounts_state {
  std::shared_ptr<store> db;  ///< null: in memory only
  std::shared_ptr<directory_cell> cell;
  static inline const char* name = "accounts";
};

/// Loads the tables from `db` (if any), publishes them, then answers accounts_op with
/// accounts_result. A store failure answers 503 and changes nothing.
caf::behavior accounts_actor(caf::stateful_actor<accounts_state>* self, std::shared_ptr<store> db,
                             std::shared_ptr<directory_cell> cell);

/// Loads every stored table into a directory (used by the actor at start, and by tests).
store::status load_directory(store& db, directory& out);

/// `n` bytes from the OS CSPRNG (getrandom). False if the kernel refused.
bool os_random(uint8_t* out, size_t n);

}  // namespace tc::actors
