// A small blocking HTTP/1.1 client over raw sockets, for tests that must see exactly what a
// server sends (status, headers, chunk framing, SSE events, early closes). Every read is bounded
// by a deadline (poll). Test-only: one connection is used from one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tc::test {

using std::chrono::milliseconds;

/// One HTTP response as read from the wire.
struct response {
  int status = 0;  ///< 0 when no complete response was read (see error)
  std::string reason;
  std::vector<std::pair<std::string, std::string>> headers;  ///< names lower-cased
  std::string body;                                          ///< decoded body (de-chunked)
  std::string raw;  ///< every byte of this response as read, headers included
  bool chunked = false;
  bool complete = false;  ///< the body ended as framed (not cut by a close or the deadline)
  std::string error;      ///< why the read failed or stopped early

  /// First header with this lower-case name, or "".
  std::string header(std::string_view lower_name) const;
  bool has_header(std::string_view lower_name) const;
};

/// One server-sent event.
struct sse_event {
  std::string event;  ///< "" when the event had no event: field
  std::string data;   ///< data: lines joined with '\n'
};

/// Parses an SSE body into events (complete events only: each ends with a blank line).
std::vector<sse_event> parse_sse(std::string_view body);

/// One client connection to 127.0.0.1 (or another literal IPv4 address).
class http_connection {
 public:
  http_connection() = default;
  ~http_connection();
  http_connection(const http_connection&) = delete;
  http_connection& operator=(const http_connection&) = delete;
  http_connection(http_connection&& o) noexcept;
  http_connection& operator=(http_connection&& o) noexcept;

  /// Connects with a deadline. False (and error()) on failure.
  bool connect(uint16_t port, milliseconds timeout = milliseconds(2000),
               const std::string& host = "127.0.0.1");

  bool connected() const { return fd_ >= 0; }
  int fd() const { return fd_; }

  /// Sends every byte within the deadline. False when the peer closed or the deadline passed.
  bool send_all(std::string_view bytes, milliseconds timeout = milliseconds(5000));

  /// Sends `bytes` in pieces of `piece` bytes, stopping early (returning how many were sent) as
  /// soon as the server has something to say or closes. Use to push an oversized request without
  /// racing the server's early answer into a reset.
  std::size_t send_until_answered(std::string_view bytes, std::size_t piece,
                                  milliseconds per_piece_wait, milliseconds timeout);

  /// Reads one complete response (status line, headers, body framed by Content-Length, chunked
  /// encoding or close). On failure status may be set with complete == false.
  response read_response(milliseconds timeout = milliseconds(10000), bool head_request = false);

  /// Reads only the status line and headers of the next response (for streams). Follow with
  /// read_body_some() until body_done().
  response read_head(milliseconds timeout = milliseconds(10000));

  /// Decoded body bytes that arrive within the deadline (at least one byte unless the body
  /// ends, the peer closes or the deadline passes). Raw bytes are appended to `*raw` if given.
  std::string read_body_some(milliseconds timeout, std::string* raw = nullptr);

  /// Reads decoded body bytes until `needle` appears in what this call returned, the body ends,
  /// or the deadline passes.
  std::string read_body_until(std::string_view needle, milliseconds timeout,
                              std::string* raw = nullptr);

  /// The current response's body ended as framed.
  bool body_done() const { return body_state_ == body_state::done; }
  /// The peer closed the connection (EOF or reset seen).
  bool peer_closed() const { return peer_closed_; }

  /// Raw bytes read until the deadline, the peer closes, or `max` bytes.
  std::string read_raw(milliseconds timeout, std::size_t max = 1 << 20);

  /// Waits until the peer closes (EOF or reset); bytes read meanwhile go to `*got`. True if
  /// closed within the deadline.
  bool wait_closed(milliseconds timeout, std::string* got = nullptr);

  /// Closes the socket. With reset, sends RST instead of FIN (SO_LINGER 0).
  void close(bool reset = false);

  /// Why the last call failed.
  const std::string& error() const { return error_; }

 private:
  enum class body_state {
    none,
    length,
    chunk_size,
    chunk_data,
    chunk_crlf,
    trailers,
    until_close,
    done
  };

  bool fill(milliseconds timeout);  // reads more bytes into in_; false on EOF/deadline/error
  std::string decode_available(std::string* raw);

  int fd_ = -1;
  std::string in_;  // bytes read but not yet consumed
  bool peer_closed_ = false;
  body_state body_state_ = body_state::none;
  uint64_t remaining_ = 0;  // bytes left in the body (length) or in the current chunk
  std::string error_;
};

/// A request written by hand: method, path, extra headers (Host and Content-Length are added).
std::string make_request(std::string_view method, std::string_view path, std::string_view body = {},
                         const std::vector<std::pair<std::string, std::string>>& headers = {},
                         bool keep_alive = true);

/// POSTs a JSON body on a new connection and reads the response (Connection: close).
response post_json(uint16_t port, std::string_view path, std::string_view body,
                   const std::vector<std::pair<std::string, std::string>>& headers = {},
                   milliseconds timeout = milliseconds(10000));

/// GETs a path on a new connection and reads the response (Connection: close).
response get(uint16_t port, std::string_view path, milliseconds timeout = milliseconds(10000));

/// Sum of the samples of one metric family in Prometheus text (name exactly, or name{labels}),
/// optionally only samples whose label text contains `label_filter`. nullopt when absent.
std::optional<double> metric_sum(std::string_view text, std::string_view name,
                                 std::string_view label_filter = {});

/// A listening TCP socket on 127.0.0.1 port 0 (`port` set to the one picked); -1 on failure.
int listen_loopback(uint16_t& port, int backlog = 16);

}  // namespace tc::test
