// HTTP/1.1 server on one libuv loop, parsed with http-parser. The data plane of tcnode and the
// front of tcsim. Everything here runs on the loop thread that owns the server; nothing blocks.
//
// What it does: keep-alive; pipelined requests answered in order; bodies with Content-Length or
// chunked encoding; limits on header bytes and body bytes; header and idle timeouts; streamed
// (chunked) responses such as SSE with back-pressure; graceful shutdown.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <uv.h>

namespace tc::http {

/// Header list as sent or received; received names are lower-cased.
using header_list = std::vector<std::pair<std::string, std::string>>;

/// Limits applied to every connection of one server.
struct limits {
  std::size_t max_header_bytes = 16 * 1024;      ///< request line + headers; over it: 431, close
  std::size_t max_body_bytes = 4 * 1024 * 1024;  ///< decoded body; over it: 413, close
  uint32_t header_timeout_ms = 10'000;  ///< from first byte of a request to end of its headers: 408
  uint32_t body_timeout_ms = 30'000;    ///< from end of headers to end of body: 408
  uint32_t idle_timeout_ms = 60'000;    ///< keep-alive connection with no request in progress
  uint32_t max_pipelined = 64;  ///< parsed requests awaiting their response before reads pause
  std::size_t write_high_watermark = 256 * 1024;  ///< responder::congested() above this
  std::size_t write_low_watermark = 64 * 1024;    ///< on_drain fires when buffered drops below
  std::size_t max_connections =
      0;  ///< open connections; a new one beyond it is closed (0 = no limit)
};

/// One parsed request. Owned by the handler once passed.
struct request {
  std::string method;  ///< "GET", "POST", ...
  std::string target;  ///< request-target as sent (path + query)
  std::string path;    ///< target without the query string
  header_list headers;
  std::string body;  ///< decoded (de-chunked) body
  bool keep_alive = true;
  uint64_t received_ns = 0;  ///< uv_hrtime() when the request was complete

  /// First header with this (lower-case) name, or empty.
  std::string_view header(std::string_view lower_name) const;
};

class server;

/// Handle to the pending response of one request. Cheap to copy; use only on the loop thread.
/// Every call on a responder whose connection is gone is a no-op (alive() is false).
class responder {
 public:
  responder() = default;

  /// The client is still connected and this response is not finished.
  bool alive() const;

  /// Sends a complete response with Content-Length. Finishes the response.
  void send(int status, const header_list& headers, std::string body);

  /// Starts a streamed response (Transfer-Encoding: chunked). Follow with write()s and end().
  void start(int status, const header_list& headers);

  /// Appends one chunk to a started stream. Returns alive().
  bool write(std::string chunk);

  /// Ends a started stream (terminating zero chunk). Finishes the response.
  void end();

  /// Aborts the response: the connection is closed without a clean end (a client sees a cut
  /// stream). Used when a started stream cannot be completed and no error event can be written.
  void abort();

  /// Bytes accepted by write() but not yet written to the socket (for this connection).
  std::size_t buffered() const;

  /// buffered() is above limits::write_high_watermark: stop producing until on_drain fires.
  bool congested() const;

  /// Called once when buffered() falls below limits::write_low_watermark (replaces a previous
  /// callback). Not called if the connection closes first.
  void on_drain(std::function<void()> fn);

  /// Called once if the connection closes before this response finished (client went away,
  /// timeout, shutdown). Replaces a previous callback.
  void on_close(std::function<void()> fn);

  /// Server-wide id of the connection (never reused within a process).
  uint64_t connection_id() const { return conn_id_; }

 private:
  friend class server;
  responder(server* srv, uint64_t conn_id, uint64_t seq)
      : srv_(srv), conn_id_(conn_id), seq_(seq) {}
  server* srv_ = nullptr;
  uint64_t conn_id_ = 0;
  uint64_t seq_ = 0;
};

/// Called on the loop thread for each complete request. It may answer at once or keep the
/// responder and answer later (still on the loop thread).
using handler = std::function<void(request&&, responder)>;

/// Counters of one server, read on its loop thread.
struct server_stats {
  uint64_t connections_accepted = 0;
  uint64_t connections_open = 0;
  uint64_t requests = 0;
  uint64_t responses_in_flight = 0;  ///< requests received whose response is not finished
  uint64_t protocol_errors = 0;      ///< 400/408/413/431 answered by the server itself
  uint64_t connections_refused = 0;  ///< closed at accept because max_connections were open
};

class server {
 public:
  server(uv_loop_t* loop, limits lim, handler fn);
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  /// Binds and listens. port 0 picks a free port. With reuse_port, SO_REUSEPORT is set so that
  /// several loops can each listen on the same port. Returns the bound port, or a negative
  /// libuv error code.
  int listen(const std::string& host, uint16_t port, bool reuse_port = false);

  /// Graceful shutdown: stop accepting, close idle connections, let in-flight responses
  /// finish (no new requests are read after the current one), and after deadline_ms close
  /// whatever is left. `done` is called on the loop thread when no connection remains.
  void shutdown(uint32_t deadline_ms, std::function<void()> done);

  /// Closes every handle at once (listener, connections, timers). After this the loop can end.
  void close_all();

  const server_stats& stats() const;
  uv_loop_t* loop() const { return loop_; }

 private:
  friend class responder;
  struct impl;
  std::unique_ptr<impl> impl_;
  uv_loop_t* loop_;
};

/// Reason phrase for a status code ("OK", "Not Found", ...).
std::string_view reason_phrase(int status);

/// Splits "HOST:PORT" or "[V6]:PORT" (brackets removed from the host). False when there is no
/// host or the port is not a number in 0..65535.
bool split_host_port(std::string_view text, std::string& host, uint16_t& port);

}  // namespace tc::http
