// Upstream HTTP(S) calls with libcurl multi, driven by a libuv loop (curl_multi_socket_action on
// uv_poll/uv_timer). One client per loop; every call and callback is on that loop's thread.
// Connections are reused across calls (curl's connection cache), HTTP/1.1 keep-alive.
#pragma once

#include <memory>

#include <uv.h>

#include "node/upstream/transport.hpp"

namespace tc::upstream {

struct curl_options {
  long max_host_connections = 0;    ///< 0 = unlimited
  long max_total_connections = 0;   ///< 0 = unlimited
  long max_connects_cached = 1024;  ///< idle connections kept for reuse
  bool verify_tls = true;
  bool tcp_nodelay = true;
};

class curl_client final : public transport {
 public:
  curl_client(uv_loop_t* loop, curl_options opts = {});
  ~curl_client() override;

  call_id start(call_request&& req, call_handlers&& h) override;
  void cancel(call_id id) override;
  void pause(call_id id) override;
  void resume(call_id id) override;
  std::size_t in_flight() const override;

  /// New connections opened so far (sum of CURLINFO_NUM_CONNECTS over ended calls).
  uint64_t connections_opened() const;

  /// Cancels every call and closes the loop handles it owns. Call before the loop ends.
  void close();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace tc::upstream
