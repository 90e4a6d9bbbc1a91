// Test helpers for the simulated provider: a bounded uv loop, call recorders, SSE parsing.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <rapidjson/document.h>
#include <uv.h>

#include "node/sim/provider.hpp"

namespace tc::sim::test {

/// A private loop with a 5 ms guard timer, so that UV_RUN_ONCE never blocks for long.
struct loop_fixture {
  uv_loop_t loop{};
  uv_timer_t guard{};

  loop_fixture() {
    uv_loop_init(&loop);
    uv_timer_init(&loop, &guard);
    uv_timer_start(
        &guard, [](uv_timer_t*) {}, 5, 5);
  }

  ~loop_fixture() {
    uv_close(reinterpret_cast<uv_handle_t*>(&guard), nullptr);
    for (int i = 0; i < 1000 && uv_run(&loop, UV_RUN_NOWAIT) != 0; ++i) {
    }
    uv_loop_close(&loop);
  }

  /// Runs the loop until pred() or timeout; returns pred().
  template <class Pred>
  bool run_until(Pred pred, uint64_t timeout_ms = 5000) {
    const uint64_t deadline = uv_hrtime() + timeout_ms * 1'000'000;
    for (int i = 0; i < 1'000'000 && !pred(); ++i) {
      if (uv_hrtime() > deadline) break;
      uv_run(&loop, UV_RUN_ONCE);
    }
    return pred();
  }

  /// Runs the loop for about ms milliseconds.
  void run_for(uint64_t ms) {
    const uint64_t deadline = uv_hrtime() + ms * 1'000'000;
    run_until([&] { return uv_hrtime() >= deadline; }, ms + 1000);
  }
};

/// What one call delivered.
struct record {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  int data_calls = 0;
  int header_calls = 0;
  bool done = false;
  int complete_calls = 0;
  upstream::call_result result;
  uint64_t start_ns = 0;
  uint64_t first_data_ns = 0;
  uint64_t done_ns = 0;
  bool in_start = false;  ///< set while start() runs: a callback seeing it is a bug
  bool callback_in_start = false;

  std::string header(std::string_view name) const {
    for (const auto& [k, v] : headers) {
      if (k == name) return v;
    }
    return {};
  }
};

/// Handlers that fill r.
upstream::call_handlers recorder(std::shared_ptr<record> r);

/// Starts a call with the given method, path and body; returns its record.
std::shared_ptr<record> start_call(provider& p, std::string method, std::string path,
                                   std::string body, upstream::call_id* id = nullptr);

inline std::shared_ptr<record> post(provider& p, std::string path, std::string body,
                                    upstream::call_id* id = nullptr) {
  return start_call(p, "POST", std::move(path), std::move(body), id);
}

/// The JSON payloads of `data:` events, except [DONE]; `done` tells whether [DONE] came last.
std::vector<std::string> sse_payloads(std::string_view body, bool* done = nullptr);

/// Parses JSON (asserting nothing); doc.HasParseError() tells.
rapidjson::Document parse(std::string_view json);

/// Settings with fast defaults for tests.
config::sim_settings fast_settings();

/// Instant mode settings.
config::sim_settings instant_settings();

/// Words in `s`: runs of characters other than ' ' (the sim writes one token per word).
std::size_t word_count(std::string_view s);

}  // namespace tc::sim::test
