// One I/O loop of the node: a libuv loop on its own thread that accepts client connections
// (node/http), parses requests once, spawns a connection actor per API request, performs the
// upstream calls the actors decide (libcurl multi, or the in-process simulated provider on the
// same loop) and relays the answers back to the clients. It never blocks and never waits on an
// actor. Actors reach it through the io_port interface: a lock-free queue plus one uv_async.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <variant>

#include <uv.h>
#include <caf/all.hpp>

#include "actors/connection.hpp"
#include "config/settings.hpp"
#include "node/metrics.hpp"
#include "node/mpsc_queue.hpp"

namespace tc::node {

/// Read-only context shared by every loop of a node, built once at start-up.
struct loop_context {
  caf::actor_system* system = nullptr;
  std::shared_ptr<const actors::pipeline> pipeline;
  node::metrics* metrics = nullptr;
  const config::settings* settings = nullptr;
  std::string models_body;                                     ///< GET /v1/models
  std::unordered_map<std::string, std::string> model_bodies;   ///< GET /v1/models/{id}
  std::unordered_map<std::string, std::string> provider_auth;  ///< name -> "Authorization: ..."
  /// Requests in flight in the whole node (every loop counts its own in and out).
  std::shared_ptr<std::atomic<int64_t>> in_flight = std::make_shared<std::atomic<int64_t>>(0);
};

class io_loop final : public actors::io_port {
 public:
  io_loop(uint32_t index, const loop_context& ctx);
  ~io_loop() override;
  io_loop(const io_loop&) = delete;
  io_loop& operator=(const io_loop&) = delete;

  /// Binds the data port (before start()). Returns the bound port or a negative uv error.
  int listen(const std::string& host, uint16_t port, bool reuse_port);

  /// Starts the loop thread.
  void start();

  /// Graceful stop from any thread: stop accepting, finish in-flight requests within
  /// grace_ms, then end the loop. `done` runs on the loop thread when it has drained.
  void shutdown(uint32_t grace_ms, std::function<void()> done);

  /// Waits for the loop thread to end (after shutdown()).
  void join();

  // io_port: called from actor threads.
  void dispatch(upstream_plan&& plan) override;
  void reject(reply_target to, openai::api_error&& error, const rate_headers& rate) override;
  void serve(cached_reply&& reply) override;
  void attach(reply_target leader, caf::actor follower, canonical::digest key) override;
  void follow(follow_chunk&& chunk) override;
  void release(reply_target to) override;
  void call(actors::side_call&& c) override;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace tc::node
