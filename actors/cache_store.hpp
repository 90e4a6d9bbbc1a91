// The bounded entry table inside one cache_shard actor (issue 3): entries by 128-bit key, bounded
// in count and bytes, expiring by TTL, evicted by "LRU weighted by hits and upstream cost"
// (GreedyDual-Size-Frequency: priority = clock + (1 + hits) * (1 + cost) / bytes; the lowest
// priority goes first and the clock rises to it, so old entries age out). Owned by one actor:
// not thread-safe (the cache_shard and the I/O loops' exact-hit lane share it under a lock),
// never blocks, O(log n) per operation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "protocol/canonical/hash.hpp"

namespace tc::actors {

enum class cache_tier : uint8_t { exact = 0, template_ = 1, semantic = 2 };

/// One stored answer and what it is filed under.
struct cache_record {
  cache_tier tier = cache_tier::exact;
  canonical::digest key;  ///< exact: the scoped full hash; template: the template key;
                          ///< semantic: the scoped full hash (found via the index)
  canonical::digest ns;   ///< the namespace (scope, model, version, prefix, params)
  std::string scope;      ///< the cache scope (tenant id or shared scope name)
  std::string model;      ///< the client-facing model id
  std::string body;       ///< the non-stream JSON answer
  std::string extra;      ///< tier data (semantic: serialised guard); counted in bytes
  /// The audit digest of body (audit::digest) by the algorithm body_digest_algo names
  /// (audit::hash_algo), made once when it is stored if the audit keeps no text; else empty.
  std::string body_digest;
  uint8_t body_digest_algo = 0;
  uint32_t prompt_tokens = 0;
  uint32_t completion_tokens = 0;
  uint64_t cost_micros = 0;  ///< what the upstream call cost, in micro-units of currency
  uint32_t upstream_ms = 0;  ///< how long the upstream call took
  uint64_t stored_ms = 0;    ///< set by put()
  uint64_t expires_ms = 0;   ///< 0 = never
  uint32_t hits = 0;
  uint64_t id = 0;  ///< set by put(): unique within the store, never reused
};

enum class removal : uint8_t { evicted, expired, invalidated, replaced };

class cache_store {
 public:
  struct limits {
    std::size_t max_entries = 100000;
    std::size_t max_bytes = 256u << 20;
  };
  /// Called for every record that leaves the store, before it is destroyed.
  using on_remove = std::function<void(const cache_record&, removal)>;

  cache_store(limits lim, on_remove cb);
  ~cache_store();

  /// Stores `r` under r.key (replacing an entry with the same key), then evicts the lowest
  /// priority entries until both bounds hold. A record larger than max_bytes is not stored
  /// (returns 0). Returns the new record's id.
  uint64_t put(cache_record r, uint64_t now_ms);
  /// The live record under `key`, counting a hit (raising its priority); an expired one is
  /// removed and nullptr returned.
  const cache_record* get(const canonical::digest& key, uint64_t now_ms);
  /// As get(), but an expired record stays for the owner to remove (get, expire): this never
  /// calls on_remove, so a reader other than the owner may call it (under the owner's lock).
  const cache_record* get_live(const canonical::digest& key, uint64_t now_ms);
  /// The same by id (semantic hits come back from the index as ids).
  const cache_record* get_by_id(uint64_t id, uint64_t now_ms);
  /// Removes every record for which `pred` is true (admin invalidation). Returns how many.
  std::size_t remove_if(const std::function<bool(const cache_record&)>& pred);
  /// Removes expired records, at most `budget` of them (the rest wait for the next sweep).
  std::size_t expire(uint64_t now_ms, std::size_t budget);

  std::size_t entries() const;
  std::size_t bytes() const;  ///< body + extra + key overhead of all records
  uint64_t evictions() const;

  /// Bytes a record is charged: body + extra + scope + model + a fixed per-entry overhead.
  static std::size_t charge(const cache_record& r);

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace tc::actors
