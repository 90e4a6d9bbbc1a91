// Small HTTP helpers shared by tcbench's load runs against a node: response capture, Prometheus
// text reading, percentiles (libcurl easy; any thread, one CURL handle each), and an open-loop
// load (libcurl's multi socket interface on an epoll set, on the calling thread).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <curl/curl.h>

namespace tc::bench {

/// What a response's headers and body say, as captured by the callbacks below.
struct response_state {
  std::string provider;       ///< x-tc-provider
  bool event_stream = false;  ///< content-type text/event-stream
  std::string body;           ///< the first 1 MiB
  long queue_ms = -1;         ///< x-tc-queue-ms; -1 when absent or not a whole number
  long retry_after = -1;      ///< Retry-After in seconds; -1 when absent or not a whole number
};

/// A header value that is a whole number (surrounding spaces allowed), or -1.
long whole_number(std::string_view value);

/// usage.completion_tokens of a chat.completion body, or -1.
long completion_tokens_of(std::string_view body);

/// error.code of an OpenAI error envelope ("queue_full" ...), or "" (none, null, not JSON).
std::string error_code_of(std::string_view body);

/// Sets `h` to POST `body` as JSON to `url` with `headers`, capturing into `r`.
void set_post(CURL* h, const std::string& url, curl_slist* headers, const std::string& body,
              response_state& r);

/// GET `url`'s body (the first 4 MiB); "" on failure.
std::string get_text(CURL* h, const std::string& url);

/// The value of the first `name{...}` line of a Prometheus text that contains each of `must`;
/// -1 when there is none.
double metric_value(const std::string& text, const std::string& name,
                    const std::vector<std::string>& must);

/// The sum of every sample of metric family `name`.
double metric_sum(const std::string& text, const std::string& name);

/// True when `target` and `admin` are both 127.x.x.x:PORT; else says so on stderr for `tool`.
bool loopback_targets(const std::string& target, const std::string& admin, const char* tool);

/// Nearest-rank percentile `p` of `v`; -1 when empty.
double pct(std::vector<double> v, double p);

/// One stream of an open-loop run: requests at a fixed rate, evenly spaced, whatever the answers.
struct open_loop_stream {
  double rate = 0;                   ///< requests per second; 0 sends none
  double phase = 0;                  ///< in [0,1): the first request is due at phase / rate s
  std::vector<std::string> headers;  ///< besides Content-Type, Cache-Control: no-cache, Expect:
  std::function<std::string(uint64_t n)> body;  ///< the JSON body of the stream's n-th request
};

/// Bounds of an open-loop run.
struct open_loop_options {
  std::string url;
  double seconds = 10;                ///< no request is due after this
  uint64_t max_requests = 1'000'000;  ///< nor after this many (all streams)
  uint32_t max_in_flight = 2000;      ///< a request due while its stream has this many in flight
                                      ///< is skipped
  double drain_seconds = 30;          ///< answers still awaited after `seconds`; then aborted
  long timeout_ms = 60'000;           ///< per request
};

/// One request of an open-loop run as its client saw it; times in s since the run began.
struct open_loop_result {
  uint32_t stream = 0;
  double due_s = 0;             ///< when the schedule said to send it (latency counts from here)
  double end_s = 0;             ///< when it ended (answered, failed or aborted)
  long status = 0;              ///< 0: no HTTP answer (transport error, timeout, aborted)
  bool aborted = false;         ///< still in flight when the drain ended
  long queue_ms = -1;           ///< x-tc-queue-ms
  long retry_after = -1;        ///< Retry-After, seconds
  long completion_tokens = -1;  ///< usage.completion_tokens of a 200
  std::string error_code;       ///< error.code of a non-200 answer
};

/// What an open-loop run did.
struct open_loop_report {
  std::vector<open_loop_result> results;  ///< every request sent, in order of sending
  std::vector<uint64_t> skipped;          ///< per stream: due while at max_in_flight, not sent
  double max_lag_s = 0;                   ///< the latest a request was handed to libcurl
  uint32_t peak_in_flight = 0;            ///< all streams together
  double ended_s = 0;                     ///< when the last answer came (or the drain ended)
};

/// Runs `streams` open-loop against `o.url` (POST, JSON) on the calling thread with libcurl multi
/// until `o.seconds` (or `o.max_requests`), then waits up to `o.drain_seconds` for the answers
/// still due. Needs curl_global_init. Bounded in time and count.
open_loop_report run_open_loop(const open_loop_options& o,
                               const std::vector<open_loop_stream>& streams);

/// Raises this process's open-file limit to its hard limit; returns the soft limit now.
uint64_t raise_open_files();

}  // namespace tc::bench
