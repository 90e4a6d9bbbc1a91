#include "actors/dedup_table.hpp"

#include <utility>

namespace tc::actors {

namespace {

void lead(caf::stateful_actor<dedup_table_state>* self, const caf::actor& leader) {
  if (self->state.led[leader.address()]++ == 0) self->monitor(leader);
}

void unlead(caf::stateful_actor<dedup_table_state>* self, const caf::actor& leader) {
  auto it = self->state.led.find(leader.address());
  if (it == self->state.led.end()) return;
  if (--it->second == 0) {
    self->demonitor(leader);
    self->state.led.erase(it);
  }
}

/// The leader's answer to every follower; the entry is removed.
void close(caf::stateful_actor<dedup_table_state>* self, dedup_result& result) {
  auto& in_flight = self->state.in_flight;
  auto it = in_flight.find(result.key);
  if (it == in_flight.end()) return;
  for (auto& f : it->second.followers) self->send(f, result);
  unlead(self, it->second.leader);
  in_flight.erase(it);
}

/// `key`'s answer is in the cache: a request that missed it just before joins with a recheck.
void remember_stored(dedup_table_state& st, const canonical::digest& key) {
  if (!st.recent.insert(key).second) return;
  st.recent_order.push_back(key);
  if (st.recent_order.size() > dedup_table_state::max_recent) {
    st.recent.erase(st.recent_order.front());
    st.recent_order.pop_front();
  }
}

}  // namespace

caf::behavior dedup_table(caf::stateful_actor<dedup_table_state>* self, uint32_t shard) {
  self->state.shard = shard;
  // A leader lost before its answer (its node went down): its followers go alone.
  self->set_down_handler([self](const caf::down_msg& down) {
    auto& in_flight = self->state.in_flight;
    for (auto it = in_flight.begin(); it != in_flight.end();) {
      if (it->second.leader.address() != down.source) {
        ++it;
        continue;
      }
      dedup_result lost;
      lost.key = it->first;
      for (auto& f : it->second.followers) self->send(f, lost);
      it = in_flight.erase(it);
    }
    self->state.led.erase(down.source);
  });
  return {
      [self](dedup_join_atom, const canonical::digest& key, const caf::actor& who,
             bool stream) -> uint8_t {
        auto& st = self->state;
        auto it = st.in_flight.find(key);
        if (it == st.in_flight.end()) {
          st.in_flight.emplace(key, dedup_table_state::entry{who, {}});
          // Pooled connection actors never die while serving; a monitor catches a lost node.
          lead(self, who);
          return static_cast<uint8_t>(st.recent.count(key) != 0 ? dedup_role::recheck
                                                                : dedup_role::leader);
        }
        it->second.followers.push_back(who);
        ++st.joins;
        if (stream) self->send(it->second.leader, dedup_attach{key, who});
        return static_cast<uint8_t>(dedup_role::follower);
      },
      [self](dedup_done_atom, dedup_result& result) { close(self, result); },
      [self](dedup_done_atom, dedup_result& result, bool stored) {
        if (stored) remember_stored(self->state, result.key);
        close(self, result);
      },
  };
}

}  // namespace tc::actors
