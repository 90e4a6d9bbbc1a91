// The upstream call contract shared by the libcurl client (real providers) and the in-process
// simulated provider. A transport lives on one libuv loop; every call and every callback happens
// on that loop's thread.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tc::upstream {

/// Why a call ended without a complete HTTP response.
enum class failure : uint8_t {
  none = 0,            ///< a complete response was received (any HTTP status)
  connect,             ///< could not connect (refused, DNS, TLS handshake)
  connect_timeout,     ///< connect did not finish within connect_timeout_ms
  first_byte_timeout,  ///< no response header within first_byte_timeout_ms
  total_timeout,       ///< the whole call exceeded total_timeout_ms
  io,                  ///< the connection broke mid-response (cut stream, reset)
  cancelled,           ///< cancel() was called
};

/// Short stable name of a failure ("connect", "first_byte_timeout", ...).
std::string_view to_string(failure f);

struct call_request {
  std::string method = "POST";
  std::string url;                   ///< absolute URL (http or https)
  std::vector<std::string> headers;  ///< "Name: value" lines, sent as given
  std::string body;
  uint32_t connect_timeout_ms = 2'000;
  uint32_t first_byte_timeout_ms = 30'000;
  uint32_t total_timeout_ms = 300'000;
};

struct call_result {
  failure why = failure::none;
  int status = 0;               ///< HTTP status, 0 if none was received
  uint64_t bytes_received = 0;  ///< body bytes delivered to on_data
  uint64_t first_byte_ns = 0;   ///< uv_hrtime() of the response header, 0 if none
  uint64_t done_ns = 0;         ///< uv_hrtime() when the call ended
  std::string detail;           ///< transport's own error text, for logs
};

/// Callbacks of one call; all run on the transport's loop thread. After on_complete no other
/// callback runs. A callback may call cancel/pause/resume on the same transport.
struct call_handlers {
  /// Response status and headers (names lower-cased), once, before any on_data.
  std::function<void(int status, std::vector<std::pair<std::string, std::string>>&& headers)>
      on_headers;
  /// Body bytes as they arrive (de-chunked).
  std::function<void(std::string_view data)> on_data;
  /// The call ended (success or failure). Not called after cancel().
  std::function<void(call_result&&)> on_complete;
};

using call_id = uint64_t;

/// A way to perform upstream HTTP calls on one loop.
class transport {
 public:
  virtual ~transport() = default;
  /// Starts a call. Callbacks never run inside start() itself.
  virtual call_id start(call_request&& req, call_handlers&& handlers) = 0;
  /// Abandons a call: the connection is dropped (or the simulated work stopped) and no
  /// further callback runs. Unknown or finished ids are ignored.
  virtual void cancel(call_id id) = 0;
  /// Stops delivering on_data until resume() (back-pressure from a slow client).
  virtual void pause(call_id id) = 0;
  virtual void resume(call_id id) = 0;
  /// Calls started and not yet completed or cancelled.
  virtual std::size_t in_flight() const = 0;
};

}  // namespace tc::upstream
