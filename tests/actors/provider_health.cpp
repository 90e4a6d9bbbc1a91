// actors/provider_health: outcomes reported by the loops reach the routing board; a request
// takes a closed endpoint, never an open one, and a half-open one only with a probe slot.
#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <thread>

#include <caf/all.hpp>

#include "actors/provider_health.hpp"
#include "protocol/messages.hpp"
#include "tests/support/actor_system.hpp"

using namespace tc::actors;
using tc::routing::breaker_state;
using tc::routing::outcome_kind;

namespace {

using tc::test::poll_until;
using tc::test::quiet_config;

tc::health_report report(outcome_kind k, double latency_ms = -1) {
  tc::health_report r;
  r.kind = static_cast<uint8_t>(k);
  r.latency_ms = latency_ms;
  return r;
}

/// A provider_health for endpoint 0 of a fresh board, probing nothing, stopped at scope exit.
struct health_fixture {
  quiet_config cfg;
  caf::actor_system sys{cfg};
  std::shared_ptr<routing_board> board = std::make_shared<routing_board>(1);
  caf::actor actor;

  explicit health_fixture(const tc::routing::health_settings& hs) {
    probe_target no_probes;
    no_probes.interval_ms = 0;
    actor = sys.spawn(provider_health, board, uint32_t{0}, hs, no_probes);
  }
  ~health_fixture() { caf::anon_send_exit(actor, caf::exit_reason::user_shutdown); }
};

}  // namespace

TEST_CASE("outcome_of maps statuses and transport failures to health outcomes") {
  CHECK(outcome_of(200, "") == outcome_kind::ok);
  CHECK(outcome_of(404, "") == outcome_kind::client_error);
  CHECK(outcome_of(429, "") == outcome_kind::rate_limited);
  CHECK(outcome_of(503, "") == outcome_kind::server_error);
  CHECK(outcome_of(401, "") == outcome_kind::server_error);  // the gateway's key refused
  CHECK(outcome_of(403, "") == outcome_kind::server_error);
  CHECK(outcome_of(0, "connect") == outcome_kind::connect_error);
  CHECK(outcome_of(0, "first_byte_timeout") == outcome_kind::timeout);
  CHECK(outcome_of(0, "connect_timeout") == outcome_kind::timeout);
  CHECK(outcome_of(200, "io") == outcome_kind::server_error);
}

TEST_CASE("provider_health: failures open the breaker on the board, half-open gives probe slots") {
  tc::routing::health_settings hs;
  hs.open_consecutive = 2;
  hs.open_ms = 150;
  hs.half_open_probes = 1;
  health_fixture f(hs);
  const caf::actor& health = f.actor;
  endpoint_live& live = f.board->live[0];
  CHECK(take_endpoint(live, health_now_ms()));  // closed

  caf::anon_send(health, report(outcome_kind::ok, 40));
  REQUIRE(poll_until([&] { return live.health.load()->samples == 1; }));
  CHECK(live.health.load()->latency_ms == doctest::Approx(40));

  caf::anon_send(health, report(outcome_kind::connect_error));
  caf::anon_send(health, report(outcome_kind::connect_error));
  REQUIRE(poll_until([&] { return live.health.load()->breaker == breaker_state::open; }));
  CHECK(!take_endpoint(live, health_now_ms()));
  CHECK(live.health.load()->score == 0);

  // After open_ms the tick publishes half-open with one probe slot: one request may go.
  REQUIRE(poll_until([&] { return live.health.load()->breaker == breaker_state::half_open; }));
  CHECK(take_endpoint(live, health_now_ms()));
  CHECK(!take_endpoint(live, health_now_ms()));  // the slot is taken
  // Its request never reports (the client left): after open_ms the slot is handed out again.
  REQUIRE(poll_until([&] { return take_endpoint(live, health_now_ms()); }));
  caf::anon_send(health, report(outcome_kind::ok, 30));  // the probe succeeded
  REQUIRE(poll_until([&] { return live.health.load()->breaker == breaker_state::closed; }));
  CHECK(take_endpoint(live, health_now_ms()));
}

TEST_CASE("provider_health: a loop's batch of reports is recorded in order, published once") {
  tc::routing::health_settings hs;
  hs.ewma_alpha = 0.2;
  hs.open_consecutive = 2;
  health_fixture f(hs);
  const caf::actor& health = f.actor;
  endpoint_live& live = f.board->live[0];

  // 40 then 60: the EWMA is 40 + 0.2 * (60 - 40) = 44 (the other order would give 56).
  caf::anon_send(health,
                 tc::health_reports{{report(outcome_kind::ok, 40), report(outcome_kind::ok, 60)}});
  REQUIRE(poll_until([&] { return live.health.load()->samples == 2; }));
  CHECK(live.health.load()->latency_ms == doctest::Approx(44));

  caf::anon_send(health, tc::health_reports{{report(outcome_kind::connect_error),
                                             report(outcome_kind::connect_error)}});
  REQUIRE(poll_until([&] { return live.health.load()->breaker == breaker_state::open; }));
  CHECK(live.health.load()->samples == 4);
  CHECK(!take_endpoint(live, health_now_ms()));
}
