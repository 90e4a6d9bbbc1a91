// The dedup_table actor (DESIGN §2 step 7, issue 3): one shard of the node's in-flight table.
// Identical cacheable requests (same scoped full hash) that arrive while one of them is calling
// the upstream join it instead of calling again: the first is the leader, the rest follow and
// get the leader's answer (streaming followers get the chunks so far, then the live ones, from
// the leader's I/O loop). A leader that dies without an answer releases its followers to go
// alone. Bounded: one entry per distinct request in flight, removed when the leader settles,
// plus the last `max_recent` keys whose answer the cache stored.
//
// A leader's cacheable answer closes its entry only once stored: the leader asks the cache shard
// to store it and closes the entry on the shard's reply. So an identical request finds either the
// entry open or the answer stored. One that looked in the cache just before the store and joins
// just after the close is told so (dedup_role::recheck) and looks again before it calls the
// upstream.
#pragma once

#include <cstdint>
#include <deque>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <caf/all.hpp>

#include "protocol/messages.hpp"

namespace tc::actors {

using dedup_join_atom = caf::atom_constant<caf::atom("dd_join")>;
using dedup_done_atom = caf::atom_constant<caf::atom("dd_done")>;

/// What a join makes of the request (the reply to dedup_join_atom, as uint8_t).
enum class dedup_role : uint8_t {
  follower = 0,  ///< wait for the leader's answer
  leader = 1,    ///< call the upstream; close the entry with the answer
  recheck = 2,   ///< leader, but an identical answer was stored since: look in the cache first
};

/// Dynamically typed: it monitors leaders (down messages), which a typed actor of CAF 0.17
/// handles less plainly. Interface:
///   (dedup_join_atom, digest key, actor who, bool stream) -> uint8_t (a dedup_role)
///   (dedup_done_atom, dedup_result)   the leader's answer: to every follower, entry removed
///   (dedup_done_atom, dedup_result, bool stored)   the same, once the cache `stored` the answer
struct dedup_table_state {
  struct entry {
    caf::actor leader;
    std::vector<caf::actor> followers;
  };
  std::unordered_map<canonical::digest, entry> in_flight;
  /// Entries led by each leader: monitored while non-zero (one monitor per leader, so a pooled
  /// actor that leads many requests does not collect monitors).
  std::unordered_map<caf::actor_addr, uint32_t> led;
  /// Keys whose answer the cache stored as their entry closed, oldest first (at most max_recent).
  std::deque<canonical::digest> recent_order;
  std::unordered_set<canonical::digest> recent;
  static constexpr std::size_t max_recent = 4096;
  uint64_t joins = 0;
  uint32_t shard = 0;
  static inline const char* name = "dedup_table";
};

/// `shard` is this table's index among the node's tables (a spawn argument also keeps CAF 0.17
/// from dereferencing an empty argument tuple: FACTS, UBSan).
caf::behavior dedup_table(caf::stateful_actor<dedup_table_state>* self, uint32_t shard);

}  // namespace tc::actors
