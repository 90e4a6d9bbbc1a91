#include "actors/tenant_quota.hpp"

#include <chrono>
#include <utility>

namespace tc::actors {

int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

namespace {

constexpr auto sweep_every = std::chrono::seconds(10);

}  // namespace

caf::behavior tenant_quota(caf::stateful_actor<tenant_quota_state>* self, uint32_t /*shard*/,
                           std::shared_ptr<const quota_hooks> hooks,
                           int64_t reservation_max_age_ms) {
  self->state.hooks = std::move(hooks);
  self->state.reservation_max_age_ms = reservation_max_age_ms;
  self->delayed_send(self, sweep_every, quota_sweep_atom::value);
  return {
      [self](quota_ask& ask) -> quota_verdict { return self->state.book.reserve(ask, unix_ms()); },
      [self](quota_settle_atom, uint64_t ticket, uint64_t tokens, int64_t cost_micros) {
        auto alerts = self->state.book.settle(ticket, tokens, cost_micros, unix_ms());
        if (self->state.hooks && self->state.hooks->on_alert)
          for (const auto& a : alerts) self->state.hooks->on_alert(a);
      },
      [self](quota_spend_atom, const std::string& scope, int64_t day, int64_t day_micros,
             int64_t month_micros) {
        self->state.book.add_spend(scope, day, day_micros, month_micros);
      },
      [self](quota_sweep_atom) {
        auto& st = self->state;
        st.book.sweep(unix_ms(), st.reservation_max_age_ms);
        if (st.hooks && st.hooks->on_sweep)
          st.hooks->on_sweep(st.book.scopes(), st.book.reservations());
        self->delayed_send(self, sweep_every, quota_sweep_atom::value);
      },
  };
}

}  // namespace tc::actors
