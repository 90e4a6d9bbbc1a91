// tcbench failover (issue 6): see failover.hpp. Blocking libcurl clients, one thread each; a
// watcher thread reads the node's /metrics every 50 ms for the dead endpoint's breaker state.
#include "tools/tcbench/failover.hpp"

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <curl/curl.h>

#include "tools/tcbench/http_load.hpp"

namespace tc::bench {

namespace {

using clock_type = std::chrono::steady_clock;

/// One request as its client saw it.
struct sample {
  double start_s = 0;  ///< since the run began
  double end_s = 0;
  bool stream = false;
  long status = 0;       ///< 0: no HTTP answer
  std::string provider;  ///< x-tc-provider
  bool started = false;  ///< a 200 event stream began
  bool done = false;     ///< ended with [DONE] (streams) or a complete body
  bool error_event = false;
};

}  // namespace

int run_failover(const failover_args& a, const std::string& command_line) {
  if (!loopback_targets(a.target, a.admin, "failover")) return 2;
  curl_global_init(CURL_GLOBAL_DEFAULT);
  const auto t0 = clock_type::now();
  const auto since = [&] { return std::chrono::duration<double>(clock_type::now() - t0).count(); };
  std::mutex mx;
  std::vector<sample> samples;
  std::atomic<bool> stop{false};
  std::atomic<double> killed_at{-1};

  // The load: each client alternates non-stream and stream requests with unique prompts.
  std::vector<std::thread> clients;
  for (uint32_t c = 0; c < a.clients; ++c) {
    clients.emplace_back([&, c] {
      CURL* h = curl_easy_init();
      curl_slist* headers = nullptr;
      headers = curl_slist_append(headers, "Content-Type: application/json");
      headers = curl_slist_append(headers, "Cache-Control: no-cache");
      const std::string url = "http://" + a.target + "/v1/chat/completions";
      for (uint64_t n = 0; !stop.load() && n < 10'000'000; ++n) {
        sample s;
        s.stream = n % 2 == 1;
        std::string body = "{\"model\":\"";
        body += a.model;
        body += "\",\"max_tokens\":";
        body += std::to_string(a.max_tokens);
        if (s.stream) body += ",\"stream\":true";
        body += ",\"messages\":[{\"role\":\"user\",\"content\":\"failover bench client ";
        body += std::to_string(c);
        body += " request ";
        body += std::to_string(n);
        body += "\"}]}";
        response_state r;
        set_post(h, url, headers, body, r);
        s.start_s = since();
        const CURLcode rc = curl_easy_perform(h);
        s.end_s = since();
        if (rc == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &s.status);
        s.provider = r.provider;
        s.started = s.stream && s.status == 200 && r.event_stream;
        s.error_event = r.body.find("event: error") != std::string::npos;
        s.done = rc == CURLE_OK && s.status == 200 &&
                 (!s.stream || r.body.find("data: [DONE]") != std::string::npos);
        std::lock_guard<std::mutex> lock(mx);
        samples.push_back(std::move(s));
      }
      curl_slist_free_all(headers);
      curl_easy_cleanup(h);
    });
  }

  // The watcher: when the dead endpoint's breaker opened after the kill.
  double opened_at = -1;
  double failovers = 0;
  std::thread watcher([&] {
    CURL* h = curl_easy_init();
    const std::string url = "http://" + a.admin + "/metrics";
    const std::vector<std::string> labels{"provider=\"" + a.dead + "\"",
                                          "model=\"" + a.model + "\""};
    while (!stop.load()) {
      const std::string m = get_text(h, url);
      const double k = killed_at.load();
      if (k >= 0 && opened_at < 0 && metric_value(m, "tc_endpoint_breaker_state", labels) == 2)
        opened_at = since() - k;
      if (!m.empty()) failovers = metric_sum(m, "tc_upstream_failovers_total");
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    curl_easy_cleanup(h);
  });

  while (since() < a.kill_at_s) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  killed_at = since();
  const int kill_rc = a.kill_pid > 0 ? ::kill(a.kill_pid, SIGKILL) : -1;
  while (since() < a.seconds) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  stop = true;
  for (auto& t : clients) t.join();
  watcher.join();
  curl_global_cleanup();

  const double k = killed_at.load();
  uint64_t errors_before_start = 0, cut_after_start = 0, ok = 0, other = 0;
  std::map<std::string, uint64_t> by_provider;
  std::vector<double> lat_before, lat_after5, lat_later;
  std::map<int, std::map<std::string, uint64_t>> per_second;  // second since kill -> provider
  std::map<int, uint64_t> errors_per_second;
  for (const auto& s : samples) {
    const double ms = (s.end_s - s.start_s) * 1000;
    if (s.done) {
      ++ok;
      ++by_provider[s.provider];
      (s.start_s < k ? lat_before : s.start_s < k + 5 ? lat_after5 : lat_later).push_back(ms);
    } else if (s.status != 200 || (s.stream && !s.started)) {
      ++errors_before_start;  // the client got an error, not a stream
    } else if (s.started) {
      ++cut_after_start;  // the stream had begun: it ends with an error event, by design
    } else {
      ++other;
    }
    const int sec = static_cast<int>(std::floor(s.start_s - k));
    if (sec >= -3 && sec <= 8) {
      if (s.done) ++per_second[sec][s.provider];
      if (!s.done) ++errors_per_second[sec];
    }
  }

  std::printf("### Failover: one of two endpoints killed under load\n\n");
  std::printf(
      "%u clients, half the requests streamed, max_tokens %u, %.0f s; provider '%s' "
      "(pid %d) killed with SIGKILL at %.2f s (kill %s).\n\n",
      a.clients, a.max_tokens, a.seconds, a.dead.c_str(), a.kill_pid, k,
      kill_rc == 0 ? "sent" : "FAILED");
  std::printf(
      "| requests | answered | errors before a stream began | streams cut after their "
      "first byte | other |\n|---:|---:|---:|---:|---:|\n");
  std::printf(
      "| %zu | %llu | %llu | %llu | %llu |\n\n", samples.size(),
      static_cast<unsigned long long>(ok), static_cast<unsigned long long>(errors_before_start),
      static_cast<unsigned long long>(cut_after_start), static_cast<unsigned long long>(other));
  std::printf("Breaker of '%s' open %s; failovers (node counter): %.0f.\n\n", a.dead.c_str(),
              opened_at < 0 ? "never seen"
                            : (std::to_string(static_cast<int>(opened_at * 1000)) +
                               " ms after the kill (metrics read every 50 ms)")
                                  .c_str(),
              failovers);
  std::printf("| latency of answered requests | p50 ms | p99 ms | n |\n|---|---:|---:|---:|\n");
  std::printf("| started before the kill | %.1f | %.1f | %zu |\n", pct(lat_before, 50),
              pct(lat_before, 99), lat_before.size());
  std::printf("| started in the 5 s after it | %.1f | %.1f | %zu |\n", pct(lat_after5, 50),
              pct(lat_after5, 99), lat_after5.size());
  std::printf("| started later | %.1f | %.1f | %zu |\n\n", pct(lat_later, 50), pct(lat_later, 99),
              lat_later.size());
  std::printf("Answers by second since the kill (by start time):\n\n| s |");
  std::vector<std::string> names;
  for (const auto& [p, n] : by_provider) names.push_back(p);
  for (const auto& p : names) std::printf(" %s |", p.c_str());
  std::printf(" not answered |\n|---:|");
  for (size_t i = 0; i < names.size(); ++i) std::printf("---:|");
  std::printf("---:|\n");
  for (int sec = -3; sec <= 8; ++sec) {
    std::printf("| %+d |", sec);
    for (const auto& p : names)
      std::printf(" %llu |", static_cast<unsigned long long>(per_second[sec][p]));
    std::printf(" %llu |\n", static_cast<unsigned long long>(errors_per_second[sec]));
  }
  std::printf("\nCommand: `%s`\n", command_line.c_str());
  const bool moved = opened_at >= 0 && opened_at <= 5.0;
  return errors_before_start == 0 && moved && kill_rc == 0 ? 0 : 1;
}

}  // namespace tc::bench
