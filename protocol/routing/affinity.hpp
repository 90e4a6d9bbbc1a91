// Prefix affinity over self-hosted replicas (issue 6): consistent hashing with bounded loads
// (Mirrokni, Thorup, Zadimoghaddam, "Consistent Hashing with Bounded Loads", 2018). Requests
// sharing a prompt prefix go to the same replica (its KV cache holds the prefix) until that
// replica carries more than its share, then spill clockwise to the next one with room, so one
// hot prefix (a shared system prompt) cannot pile everything on one replica. Pure; any thread
// for a const ring.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace tc::routing {

/// "No replica": what a pick on an empty ring returns.
inline constexpr size_t no_replica = SIZE_MAX;

/// A ring of virtual nodes for a replica set, built once per set. Each replica's points are hashed
/// from its id alone (SHA-256 of id and point number), so adding or removing a replica moves only
/// the keys that land on or leave its points (about 1/n of them).
/// Memory: replicas * vnodes ring entries (16 bytes each) plus the ids; vnodes is capped at 1024.
class affinity_ring {
 public:
  /// Builds the ring for `ids` (replica i is ids[i]; ids should be unique).
  explicit affinity_ring(std::vector<std::string> ids, uint32_t vnodes = 64);

  /// The replica for `key` (e.g. a prompt's prefix_hash.hi) given each replica's in-flight count
  /// (`loads[i]` for ids[i]; missing ones count 0): walking clockwise from the key's point, the
  /// first replica with load + 1 <= ceil(c * (total + 1) / n), where total is the sum of loads.
  /// With c >= 1 one always exists; c below 1 (or not a number) counts as 1. With all loads
  /// below the bound, a key always gets the replica its point falls on. no_replica if empty.
  size_t pick(uint64_t key, const std::vector<uint32_t>& loads, double c = 1.25) const;

  /// The replica ids, in the order given (the indexes pick() returns).
  const std::vector<std::string>& ids() const { return ids_; }

 private:
  struct point {
    uint64_t at;
    uint32_t replica;
  };
  std::vector<std::string> ids_;
  std::vector<point> ring_;  // sorted by (at, replica)
};

/// affinity_ring(replicas, 64).pick(key, loads, c), building the ring on every call: prefer
/// keeping an affinity_ring while the replica set is unchanged.
size_t pick_bounded(uint64_t key, const std::vector<std::string>& replicas,
                    const std::vector<uint32_t>& loads, double c = 1.25);

}  // namespace tc::routing
