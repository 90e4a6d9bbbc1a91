// provider_health: one actor per upstream endpoint (a model at a provider). It owns that
// endpoint's routing::endpoint_health, learns from every outcome the I/O loops report
// (passively) and from its own probes of an endpoint whose breaker is half-open (actively), and
// publishes what the router reads into the endpoint's slot of the routing_board.
//
// The board is read lock-free by every connection actor at step 9 and written by the loops
// (requests in flight) and by the health actors (snapshots, probe slots).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <caf/all.hpp>

#include "protocol/messages.hpp"
#include "protocol/routing/health.hpp"

namespace tc::actors {

class io_port;

using health_tick_atom = caf::atom_constant<caf::atom("hp_tick")>;

/// Live state of one endpoint, shared by loops, health actors and connection actors.
struct endpoint_live {
  std::atomic<uint32_t> in_flight{0};  ///< calls running now, all loops (the loops count)
  /// Half-open probe slots left: a request takes one (fetch_sub) before it may go there.
  std::atomic<int32_t> probes{0};
  std::atomic<std::shared_ptr<const routing::health_snapshot>> health{
      std::make_shared<const routing::health_snapshot>()};
};

/// Every endpoint's live state, by pipeline endpoint index; fixed at start.
struct routing_board {
  explicit routing_board(size_t endpoints) : live(endpoints) {}
  std::vector<endpoint_live> live;
  std::vector<caf::actor> health;  ///< provider_health actors, by endpoint (empty in unit tests)
};

/// What an endpoint is probed with when its breaker is half-open: GET `url` (its models list).
struct probe_target {
  std::string provider;  ///< the transport (sim providers run in-process)
  std::string url;       ///< e.g. https://api.deepseek.com/v1/models
  uint32_t timeout_ms = 2000;
  uint32_t interval_ms = 1000;  ///< at most one probe per interval; 0 = never probe
  io_port* port = nullptr;      ///< the loop that makes the call
};

struct provider_health_state {
  std::shared_ptr<routing_board> board;
  uint32_t endpoint = 0;
  routing::endpoint_health health;
  uint32_t probe_slots = 1;  ///< routing.breaker_probes
  probe_target probe;
  int64_t last_probe_ms = 0;
  bool probing = false;
  int64_t slots_given_ms = 0;  ///< when the probe slots were last handed out (half-open)
  uint32_t open_ms = 5000;     ///< routing.breaker_open_ms: how long a slot may stay out
  routing::breaker_state published = routing::breaker_state::closed;
  static inline const char* name = "provider_health";
};

/// Spawned by the node, one per endpoint:
///   (health_report)     an outcome (the batcher's merged calls): recorded, the snapshot
///                       republished
///   (health_reports)    a loop iteration's outcomes, in order: recorded, republished once
///   (health_tick_atom)  every 100 ms: republish (an open breaker turns half-open with time),
///                       probe a half-open endpoint that no request probed, and hand the probe
///                       slots out again when those taken settled nothing for open_ms (a
///                       client left before its call; a cancelled call reports nothing)
///   (side_answer)       a probe's answer
caf::behavior provider_health(caf::stateful_actor<provider_health_state>* self,
                              std::shared_ptr<routing_board> board, uint32_t endpoint,
                              routing::health_settings settings, probe_target probe);

/// A request may go to `live` now: closed and not in Retry-After, or half-open and a
/// probe slot was free (it is taken). Any thread.
bool take_endpoint(endpoint_live& live, int64_t now_ms);

/// Milliseconds on the steady clock, the health clock of the whole node.
int64_t health_now_ms();

/// The routing::outcome_kind of an upstream attempt that ended with HTTP `status` (0: no answer)
/// and transport failure `failure` ("" none, "connect", "connect_timeout", ...).
routing::outcome_kind outcome_of(int status, std::string_view failure);

}  // namespace tc::actors
