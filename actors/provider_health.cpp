#include "actors/provider_health.hpp"

#include <chrono>
#include <utility>

#include "actors/connection.hpp"

namespace tc::actors {

namespace {

using self_ptr = caf::stateful_actor<provider_health_state>*;

constexpr auto tick_period = std::chrono::milliseconds(100);

/// Publishes the snapshot at `now`; a breaker that just turned half-open gets its probe slots,
/// one that left half-open loses those left.
void publish(self_ptr self, int64_t now) {
  auto& st = self->state;
  auto snap = std::make_shared<const routing::health_snapshot>(st.health.snapshot(now));
  endpoint_live& live = st.board->live[st.endpoint];
  const bool half_open = snap->breaker == routing::breaker_state::half_open;
  if (snap->breaker != st.published ||
      (half_open && now - st.slots_given_ms >= static_cast<int64_t>(st.open_ms) &&
       live.probes.load(std::memory_order_relaxed) <= 0)) {
    live.probes.store(half_open ? static_cast<int32_t>(st.probe_slots) : 0,
                      std::memory_order_relaxed);
    st.slots_given_ms = now;
    st.published = snap->breaker;
  }
  live.health.store(std::move(snap));
}

/// A half-open endpoint that no request has settled within a probe interval is probed by the
/// actor itself: GET its models list. Its answer decides like a request's would.
void maybe_probe(self_ptr self, int64_t now) {
  auto& st = self->state;
  if (st.probing || st.probe.interval_ms == 0 || st.probe.port == nullptr) return;
  if (st.published != routing::breaker_state::half_open) return;
  if (now - st.last_probe_ms < static_cast<int64_t>(st.probe.interval_ms)) return;
  st.probing = true;
  st.last_probe_ms = now;
  side_call c;
  c.reply_to = caf::actor_cast<caf::actor>(self);
  c.method = "GET";
  c.provider = st.probe.provider;
  c.url = st.probe.url;
  c.timeout_ms = st.probe.timeout_ms;
  st.probe.port->call(std::move(c));
}

void record(provider_health_state& st, int64_t now, const health_report& r) {
  st.health.record(now, static_cast<routing::outcome_kind>(r.kind), r.latency_ms, r.ttft_ms,
                   r.retry_after_ms);
}

}  // namespace

int64_t health_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

routing::outcome_kind outcome_of(int status, std::string_view failure) {
  using k = routing::outcome_kind;
  if (failure == "connect") return k::connect_error;
  if (failure == "connect_timeout" || failure == "first_byte_timeout" ||
      failure == "total_timeout" || failure == "timeout")
    return k::timeout;
  if (!failure.empty()) return k::server_error;  // broke mid-answer ("io")
  if (status == 429) return k::rate_limited;
  // 401/403: the endpoint refuses the gateway's own credentials, not the client's request; it
  // cannot serve anyone until an operator fixes the key.
  if (status >= 500 || status == 0 || status == 401 || status == 403) return k::server_error;
  if (status >= 400) return k::client_error;
  return k::ok;
}

bool take_endpoint(endpoint_live& live, int64_t now_ms) {
  const auto snap = live.health.load();
  if (snap->retry_after_until_ms > now_ms) return false;
  switch (snap->breaker) {
    case routing::breaker_state::closed:
      return true;
    case routing::breaker_state::open:
      return false;
    case routing::breaker_state::half_open:
      if (live.probes.fetch_sub(1, std::memory_order_relaxed) > 0) return true;
      live.probes.fetch_add(1, std::memory_order_relaxed);
      return false;
  }
  return false;
}

caf::behavior provider_health(caf::stateful_actor<provider_health_state>* self,
                              std::shared_ptr<routing_board> board, uint32_t endpoint,
                              routing::health_settings settings, probe_target probe) {
  auto& st = self->state;
  st.board = std::move(board);
  st.endpoint = endpoint;
  st.probe_slots = std::max<uint32_t>(1, settings.half_open_probes);
  st.open_ms = std::max<uint32_t>(10, settings.open_ms);
  st.health = routing::endpoint_health(settings);
  st.probe = std::move(probe);
  publish(self, health_now_ms());
  self->delayed_send(self, tick_period, health_tick_atom::value);
  return {
      [self](const health_report& r) {
        const int64_t now = health_now_ms();
        record(self->state, now, r);
        publish(self, now);
      },
      [self](const health_reports& rs) {
        const int64_t now = health_now_ms();
        for (const health_report& r : rs.reports) record(self->state, now, r);
        publish(self, now);  // once for the batch: routing reads the latest snapshot only
      },
      [self](health_tick_atom) {
        const int64_t now = health_now_ms();
        publish(self, now);
        maybe_probe(self, now);
        self->delayed_send(self, tick_period, health_tick_atom::value);
      },
      [self](side_answer& a) {
        auto& st = self->state;
        st.probing = false;
        const int64_t now = health_now_ms();
        st.health.record(now, outcome_of(a.status, a.failure), -1, -1, 0);
        publish(self, now);
      },
  };
}

}  // namespace tc::actors
