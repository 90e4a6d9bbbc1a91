// Small blocking-HTTP helpers (libcurl easy) shared by tcbench's load runs against a node:
// response capture, Prometheus text reading, percentiles. Any thread; one CURL handle each.
#pragma once

#include <string>
#include <vector>

#include <curl/curl.h>

namespace tc::bench {

/// What a response's headers and body say, as captured by the callbacks below.
struct response_state {
  std::string provider;       ///< x-tc-provider
  bool event_stream = false;  ///< content-type text/event-stream
  std::string body;           ///< the first 1 MiB
};

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

}  // namespace tc::bench
