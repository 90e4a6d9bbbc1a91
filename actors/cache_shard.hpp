// The cache_shard actor (DESIGN §2 step 6 and 13, issue 3): one shard of the node's response
// cache. Exact entries live in the shard that owns their key; the template and semantic pointers
// of a namespace (scope, model, version, prefix, params) live in the shard that owns the
// namespace, with one semantic index per namespace. So an exact hit is one message, and a
// template or semantic hit is two (find the pointer, then fetch the answer). Every table is
// bounded (cache_store) and every index entry leaves with its record.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>

#include <caf/all.hpp>

#include "actors/cache_store.hpp"
#include "actors/semantic_index.hpp"
#include "protocol/messages.hpp"

namespace tc::actors {

using cache_get_atom = caf::atom_constant<caf::atom("cache_get")>;
using cache_find_atom = caf::atom_constant<caf::atom("cache_find")>;
using cache_put_atom = caf::atom_constant<caf::atom("cache_put")>;
using cache_store_atom = caf::atom_constant<caf::atom("cache_stor")>;
using cache_link_atom = caf::atom_constant<caf::atom("cache_link")>;
using cache_drop_atom = caf::atom_constant<caf::atom("cache_drop")>;
using cache_stats_atom = caf::atom_constant<caf::atom("cache_stat")>;
using cache_sweep_atom = caf::atom_constant<caf::atom("cache_swee")>;

using cache_shard_actor = caf::typed_actor<
    /// The answer stored under an exact key (a hit counts towards keeping it).
    caf::replies_to<cache_get_atom, canonical::digest>::with<cache_hit>,
    /// Template, then semantic lookup in a namespace owned here; a hit names the exact key.
    caf::replies_to<cache_find_atom, cache_probe>::with<cache_hit>,
    /// Stores an answer under its exact key.
    caf::reacts_to<cache_put_atom, cache_entry>,
    /// Stores an answer under its exact key and replies once it can be found: a dedup leader
    /// closes its entry only then.
    caf::replies_to<cache_store_atom, cache_entry>::with<bool>,
    /// Stores the template and semantic pointers to an answer.
    caf::reacts_to<cache_link_atom, cache_link>,
    /// Removes the entries matching a filter; replies how many.
    caf::replies_to<cache_drop_atom, cache_filter>::with<uint64_t>,
    caf::replies_to<cache_stats_atom>::with<cache_stats>,
    /// Removes expired entries (sent to itself every second).
    caf::reacts_to<cache_sweep_atom>>;

struct cache_shard_config {
  cache_store::limits limits;
  semantic_options semantic;
  /// The share of one thread (percent) the shard may spend on semantic searches and inserts;
  /// 0 = no limit ([cache] semantic_budget_pct).
  uint32_t semantic_budget_pct = 0;
};

/// The time a shard may spend on semantic work, so that an HNSW graph on one shard never caps
/// the node: every request with a deterministic, new query would otherwise search and then
/// insert on the namespace's one shard, about 0.2 ms at 20,000 entries and more as it grows.
/// A bucket of nanoseconds, refilled at pct/100 of real time and holding one second's worth
/// (so bursts pass). Searches run while any time is left (an answer now); inserts only while
/// half the bucket is (answers later): under sustained load searches keep the budget and the
/// index stops growing. Pure: the caller passes the clock.
class semantic_budget {
 public:
  explicit semantic_budget(uint32_t pct = 0, uint64_t now_ns = 0);
  /// Whether a search may run at `now_ns`.
  bool allow_search(uint64_t now_ns);
  /// Whether an insert may run at `now_ns`.
  bool allow_insert(uint64_t now_ns);
  /// Charges `ns` of work done.
  void spend(uint64_t ns);
  /// When a search will be allowed again, from `now_ns` (now_ns itself if it is now).
  uint64_t resume_at(uint64_t now_ns) const;
  bool limited() const { return pct_ != 0; }

 private:
  void refill(uint64_t now_ns);
  uint32_t pct_;
  int64_t capacity_;  ///< in ns of work x 100
  int64_t tokens_;    ///< in ns of work x 100; negative: owed
  uint64_t last_ns_;
};

/// A semantic pointer: the embedding lives in the namespace's index under the record's id.
struct semantic_namespace {
  semantic_index index;
  explicit semantic_namespace(const semantic_options& opt) : index(opt) {}
};

/// A shard's entry table, shared by the shard (which owns it: every change, every removal) and
/// the I/O loops' exact-hit lane, which only reads exact answers with cache_store::get_live under
/// `mu` (try_lock: a busy shard sends the request the actor way). The shard's semantic indexes
/// stay its own.
struct shared_cache_store {
  std::mutex mu;
  std::unique_ptr<cache_store> store;  ///< set once by the shard at its start, under mu
  /// Until this steady-clock time (ns) the shard's semantic budget is spent: it would skip a
  /// semantic search or insert. Connection actors then send none, and prepare no embedding for
  /// one (with the openai embedder, no call is paid for). 0: not spent. Set by the shard.
  std::atomic<uint64_t> semantic_spent_until_ns{0};
  /// Semantic searches and inserts that connection actors left out for that reason (the shard
  /// reports them with its own in cache_stats).
  std::atomic<uint64_t> skipped_searches_early{0};
  std::atomic<uint64_t> skipped_inserts_early{0};
};

struct cache_shard_state {
  std::shared_ptr<const cache_shard_config> cfg;
  std::shared_ptr<shared_cache_store> shared;
  cache_store* store = nullptr;  ///< shared->store: every use holds shared->mu
  std::unordered_map<canonical::digest, std::unique_ptr<semantic_namespace>> namespaces;
  uint64_t expirations = 0;
  semantic_budget budget;
  uint64_t skipped_searches = 0;  ///< semantic searches left out: over the budget
  uint64_t skipped_inserts = 0;   ///< semantic inserts left out: over the budget
  static inline const char* name = "cache_shard";
};

cache_shard_actor::behavior_type cache_shard(
    cache_shard_actor::stateful_pointer<cache_shard_state> self,
    std::shared_ptr<const cache_shard_config> cfg, std::shared_ptr<shared_cache_store> shared);

/// The shard index that owns `key` among `shards` (stable: the key's high bits, mod n).
inline uint32_t shard_of(const canonical::digest& key, uint32_t shards) {
  return shards == 0 ? 0 : static_cast<uint32_t>(key.hi % shards);
}

}  // namespace tc::actors
