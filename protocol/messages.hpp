// Every message that crosses an actor boundary (or the bridge to an I/O loop), with its
// inspect(), and the project's single type-ID block: add_message_types(). Nothing here does work.
//
// Messages are plain structs of values (no pointers to shared memory), so CAF can send them to
// another node unchanged. CAF 0.17 fails at *send* time on an unregistered type, so every type
// listed here is sent through a real middleman connection by tests/protocol/messages.cpp.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/all.hpp>

#include "protocol/openai/error.hpp"
#include "protocol/openai/request.hpp"
#include "protocol/openai/sse.hpp"

namespace tc::openai {

/// CAF 0.17 has no std::optional support: optionals travel as (present, value) pairs.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, request& x) {
  bool has_temperature = x.temperature.has_value();
  double temperature = x.temperature.value_or(0.0);
  bool has_seed = x.seed.has_value();
  int64_t seed = x.seed.value_or(0);
  auto restore = caf::meta::load_callback([&]() -> caf::error {
    x.temperature = has_temperature ? std::optional<double>{temperature} : std::nullopt;
    x.seed = has_seed ? std::optional<int64_t>{seed} : std::nullopt;
    return caf::none;
  });
  return f(caf::meta::type_name("tc::openai::request"), x.kind, x.model, x.stream, x.include_usage,
           x.max_tokens, has_temperature, temperature, has_seed, seed, x.n, x.has_tools,
           x.message_count, x.input_chars, x.user, x.body, restore);
}

}  // namespace tc::openai

namespace tc {

/// Where the answer to one client request goes: the I/O loop that holds the client connection
/// and that loop's slot for the request.
struct reply_target {
  uint32_t loop = 0;
  uint64_t slot = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, reply_target& x) {
  return f(caf::meta::type_name("tc::reply_target"), x.loop, x.slot);
}

/// connection -> I/O loop: perform this upstream call and relay its answer to the client
/// (DESIGN §2 steps 10-12).
struct upstream_plan {
  reply_target to;
  std::string provider;  ///< provider name from config
  std::string model;     ///< the model id the client asked for (metrics labels)
  std::string url;       ///< absolute upstream URL (sim://<provider>/... for sim)
  std::string body;      ///< the request body to send (model renamed if needed)
  bool stream = false;
  uint32_t connect_timeout_ms = 0;
  uint32_t first_byte_timeout_ms = 0;
  uint32_t total_timeout_ms = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, upstream_plan& x) {
  return f(caf::meta::type_name("tc::upstream_plan"), x.to, x.provider, x.model, x.url, x.body,
           x.stream, x.connect_timeout_ms, x.first_byte_timeout_ms, x.total_timeout_ms);
}

/// How a request ended, as the I/O loop saw it. I/O loop -> connection, for settlement
/// (DESIGN §2 step 13).
struct request_outcome {
  int status = 0;                ///< HTTP status sent to the client
  openai::usage usage;           ///< as reported upstream, or counted
  bool usage_reported = false;   ///< usage came from the upstream (not estimated)
  bool client_gone = false;      ///< the client disconnected before the end
  bool stream_cut = false;       ///< a started stream ended with an error event
  std::string upstream_failure;  ///< transport failure name, empty if none
  uint64_t upstream_ns = 0;      ///< time spent in the upstream call
  uint64_t ttft_ns = 0;          ///< time from upstream start to its first byte
  uint64_t total_ns = 0;         ///< time from request received to last byte written
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, request_outcome& x) {
  return f(caf::meta::type_name("tc::request_outcome"), x.status, x.usage, x.usage_reported,
           x.client_gone, x.stream_cut, x.upstream_failure, x.upstream_ns, x.ttft_ns, x.total_ns);
}

/// The single type-ID block: registers every message type with the actor system.
inline void add_message_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<openai::request>("tc::openai::request");
  cfg.add_message_type<openai::api_error>("tc::openai::api_error");
  cfg.add_message_type<openai::usage>("tc::openai::usage");
  cfg.add_message_type<reply_target>("tc::reply_target");
  cfg.add_message_type<upstream_plan>("tc::upstream_plan");
  cfg.add_message_type<request_outcome>("tc::request_outcome");
}

}  // namespace tc
