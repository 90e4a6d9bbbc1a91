// tcbench batching / flood (issue 6): see scheduling.hpp. The load runs on the calling thread
// (run_open_loop); a watcher thread samples tcsim's batch occupancy for the utilisation.
#include "tools/tcbench/scheduling.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include <curl/curl.h>
#include <rapidjson/document.h>

#include "tools/tcbench/http_load.hpp"

namespace tc::bench {

namespace {

using clock_type = std::chrono::steady_clock;

/// tcsim's settings that its utilisation and its capacity follow (node/sim/provider.hpp).
struct sim_model {
  uint32_t max_batch = 1;
  double contention = 0;
  double tokens_per_sec = 0;
  double ttft_ms = 0;
  uint32_t default_max_tokens = 1;

  /// Aggregate decode rate of n sequences, in units of one sequence alone.
  double throughput(uint32_t n) const { return n == 0 ? 0 : n / (1 + contention * (n - 1)); }

  /// tcsim's utilisation with n sequences holding batch slots: throughput(n)/throughput(max).
  double utilisation(uint32_t n) const {
    if (n == 0) return 0;
    return std::min(1.0, throughput(n) / throughput(std::max<uint32_t>(1, max_batch)));
  }

  /// Mean completion tokens with max_tokens `cap`: tcsim draws lengths uniformly from
  /// [max(1, d/2), max(1, d)] (d = default_max_tokens) and cuts them at the cap.
  double mean_tokens(uint32_t cap) const {
    const uint32_t hi = std::max<uint32_t>(1, default_max_tokens);
    const uint32_t lo = std::max<uint32_t>(1, hi / 2);
    double sum = 0;
    for (uint32_t k = lo; k <= hi; ++k) sum += cap > 0 ? std::min(k, cap) : k;
    return sum / (hi - lo + 1);
  }

  /// Requests per second `n` always-busy slots complete; -1 in instant mode (no bound).
  double rate_at(uint32_t n, uint32_t cap) const {
    const double per_sequence = tokens_per_sec / (1 + contention * (n - 1));
    if (!(per_sequence > 0)) return -1;
    return n / (ttft_ms / 1000 + (mean_tokens(cap) - 1) / per_sequence);
  }
};

/// Reads GET /sim/settings of tcsim at `sim`; false when it does not answer one.
bool read_sim_model(const std::string& sim, sim_model& m) {
  CURL* h = curl_easy_init();
  const std::string text = get_text(h, "http://" + sim + "/sim/settings");
  curl_easy_cleanup(h);
  rapidjson::Document doc;
  doc.Parse(text.c_str());
  if (doc.HasParseError() || !doc.IsObject()) return false;
  const auto number = [&](const char* name, double& out) {
    const auto it = doc.FindMember(name);
    if (it == doc.MemberEnd() || !it->value.IsNumber()) return false;
    out = it->value.GetDouble();
    return true;
  };
  double batch = 0, max_tokens = 0;
  if (!number("max_batch", batch) || !number("batch_contention", m.contention) ||
      !number("tokens_per_sec", m.tokens_per_sec) || !number("ttft_ms", m.ttft_ms) ||
      !number("default_max_tokens", max_tokens))
    return false;
  m.max_batch = static_cast<uint32_t>(std::max(1.0, batch));
  m.default_max_tokens = static_cast<uint32_t>(std::max(1.0, max_tokens));
  return true;
}

/// What tcsim said during a run's arrivals.
struct sim_watch {
  bool ok = false;  ///< the first and the last read answered
  uint64_t samples = 0;
  double util = -1;  ///< time average of utilisation(active sequences) over the arrivals
  double mean_active = -1;
  double mean_waiting = -1;
  double util_recent = -1;  ///< tcsim's own figure over its last ~10 s, read as arrivals stop
  double tokens = 0;        ///< completion tokens it generated between the first and last read
  double completed = 0;     ///< calls it completed between them
  double span = 0;          ///< seconds between them
};

/// Samples tcsim's /metrics every 20 ms from t0 to t0 + seconds, or until `stop` if earlier.
sim_watch watch_sim(const std::string& sim, const sim_model& m, clock_type::time_point t0,
                    double seconds, const std::atomic<bool>& stop) {
  sim_watch w;
  CURL* h = curl_easy_init();
  const std::string url = "http://" + sim + "/metrics";
  const auto since = [&] { return std::chrono::duration<double>(clock_type::now() - t0).count(); };
  std::string text = get_text(h, url);
  const double t_first = since();
  const bool first_ok = text.find("tcsim_active_sequences") != std::string::npos;
  const double tokens0 = metric_sum(text, "tcsim_tokens_generated_total");
  const double completed0 = metric_sum(text, "tcsim_completed_total");
  double weighted_util = 0, weighted_active = 0, weighted_waiting = 0, weight = 0;
  double t_prev = t_first;
  bool last_ok = false;
  auto tick = clock_type::now();
  for (uint64_t i = 1; i < 10'000'000; ++i) {
    tick = std::max(tick + std::chrono::milliseconds(20), clock_type::now());  // no catch-up burst
    std::this_thread::sleep_until(tick);
    text = get_text(h, url);
    const double t = since();
    last_ok = text.find("tcsim_active_sequences") != std::string::npos;
    if (last_ok) {
      const double active = metric_sum(text, "tcsim_active_sequences");
      const double dt = std::min(t, seconds) - t_prev;
      if (dt > 0) {
        weighted_util += m.utilisation(static_cast<uint32_t>(std::max(0.0, active))) * dt;
        weighted_active += active * dt;
        weighted_waiting += metric_sum(text, "tcsim_waiting") * dt;
        weight += dt;
      }
      ++w.samples;
      t_prev = t;
    }
    if (t >= seconds || stop.load()) {  // the load may end early (--max-requests)
      if (last_ok) {
        w.util_recent = metric_sum(text, "tcsim_gpu_utilisation_recent");
        w.tokens = metric_sum(text, "tcsim_tokens_generated_total") - tokens0;
        w.completed = metric_sum(text, "tcsim_completed_total") - completed0;
        w.span = t - t_first;
      }
      break;
    }
  }
  curl_easy_cleanup(h);
  w.ok = first_ok && last_ok;
  if (weight > 0) {
    w.util = weighted_util / weight;
    w.mean_active = weighted_active / weight;
    w.mean_waiting = weighted_waiting / weight;
  }
  return w;
}

/// One class of requests (one stream of the open-loop run), summed up.
struct class_stats {
  uint64_t sent = 0;
  uint64_t skipped = 0;  ///< due while the client was at its in-flight cap
  uint64_t ok = 0;
  uint64_t queue_full = 0;     ///< 503 queue_full
  uint64_t queue_timeout = 0;  ///< 503 queue_timeout
  uint64_t other_503 = 0;
  uint64_t no_retry_after = 0;     ///< 503s without a Retry-After
  uint64_t other_http = 0;         ///< any other status but 200
  uint64_t no_answer = 0;          ///< transport error, timeout, or still in flight after the drain
  uint64_t ok_in_window = 0;       ///< 200s that ended while arrivals went on
  uint64_t tokens_in_window = 0;   ///< their completion tokens
  uint64_t queue_seen = 0;         ///< 200s that carried x-tc-queue-ms
  std::vector<double> latency_ms;  ///< of 200s, from the scheduled send time
  std::vector<double> queue_ms;    ///< x-tc-queue-ms of 200s
};

constexpr uint32_t all_streams = UINT32_MAX;

class_stats stats_of(const open_loop_report& r, uint32_t stream, double seconds) {
  class_stats c;
  for (size_t s = 0; s < r.skipped.size(); ++s) {
    if (stream == all_streams || s == stream) c.skipped += r.skipped[s];
  }
  for (const auto& x : r.results) {
    if (stream != all_streams && x.stream != stream) continue;
    ++c.sent;
    if (x.status == 200) {
      ++c.ok;
      c.latency_ms.push_back((x.end_s - x.due_s) * 1000);
      if (x.queue_ms >= 0) {
        ++c.queue_seen;
        c.queue_ms.push_back(static_cast<double>(x.queue_ms));
      }
      if (x.end_s <= seconds) {
        ++c.ok_in_window;
        if (x.completion_tokens > 0)
          c.tokens_in_window += static_cast<uint64_t>(x.completion_tokens);
      }
    } else if (x.status == 503) {
      if (x.retry_after < 0) ++c.no_retry_after;
      if (x.error_code == "queue_full") {
        ++c.queue_full;
      } else if (x.error_code == "queue_timeout") {
        ++c.queue_timeout;
      } else {
        ++c.other_503;
      }
    } else if (x.status != 0) {
      ++c.other_http;
    } else {
      ++c.no_answer;
    }
  }
  return c;
}

/// `v` with `digits` decimals, or "NA" when negative (unknown).
std::string num(double v, int digits = 1) {
  if (!(v >= 0)) return "NA";
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string count(uint64_t n) {
  return std::to_string(n);
}

/// A Markdown row of `c` under the header class_table_header prints.
void print_class_row(const std::string& name, const class_stats& c, double seconds) {
  std::printf(
      "| %s | %s | %s | %s | %s / %s / %s | %s | %s | %s / %s / %s | %s / %s / %s | %s | %s |\n",
      name.c_str(), count(c.sent).c_str(), count(c.skipped).c_str(), count(c.ok).c_str(),
      count(c.queue_full).c_str(), count(c.queue_timeout).c_str(), count(c.other_503).c_str(),
      count(c.other_http).c_str(), count(c.no_answer).c_str(), num(pct(c.latency_ms, 50)).c_str(),
      num(pct(c.latency_ms, 95)).c_str(), num(pct(c.latency_ms, 99)).c_str(),
      num(pct(c.queue_ms, 50), 0).c_str(), num(pct(c.queue_ms, 95), 0).c_str(),
      num(pct(c.queue_ms, 99), 0).c_str(), num(c.ok_in_window / seconds).c_str(),
      num(c.tokens_in_window / seconds, 0).c_str());
}

void print_class_header() {
  std::printf(
      "| class | sent | skipped | 200 | 503 queue_full / queue_timeout / other | other errors | "
      "no answer | latency p50 / p95 / p99 ms | queue wait p50 / p95 / p99 ms | completed "
      "req/s | completion tokens/s |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
}

/// Appends ` PREFIX_key=value` for the figures of `c` to `out`.
void add_class_summary(std::string& out, const std::string& prefix, const class_stats& c,
                       double seconds) {
  const auto add = [&](const char* key, const std::string& value) {
    out += ' ';
    out += prefix;
    out += key;
    out += '=';
    out += value;
  };
  add("sent", count(c.sent));
  add("skipped", count(c.skipped));
  add("ok", count(c.ok));
  add("503", count(c.queue_full + c.queue_timeout + c.other_503));
  add("queue_full", count(c.queue_full));
  add("queue_timeout", count(c.queue_timeout));
  add("503_no_retry_after", count(c.no_retry_after));
  add("other_errors", count(c.other_http + c.no_answer));
  add("p50_ms", num(pct(c.latency_ms, 50)));
  add("p95_ms", num(pct(c.latency_ms, 95)));
  add("p99_ms", num(pct(c.latency_ms, 99)));
  add("queue_seen", count(c.queue_seen));
  add("queue_p50_ms", num(pct(c.queue_ms, 50), 0));
  add("queue_p95_ms", num(pct(c.queue_ms, 95), 0));
  add("queue_p99_ms", num(pct(c.queue_ms, 99), 0));
  add("rps", num(c.ok_in_window / seconds, 2));
  add("tokens_per_s", num(c.tokens_in_window / seconds, 1));
}

/// A prompt no earlier run sent: the cache and dedup cannot answer it.
std::string chat_body(const std::string& model, uint32_t max_tokens, const std::string& nonce,
                      const char* what, uint64_t n) {
  std::string body = "{\"model\":\"";
  body += model;
  body += "\",\"max_tokens\":";
  body += std::to_string(max_tokens);
  body += ",\"messages\":[{\"role\":\"user\",\"content\":\"scheduling bench ";
  body += nonce;
  body += ' ';
  body += what;
  body += " request ";
  body += std::to_string(n);
  body += ": explain in a few sentences why a shared GPU needs a priority queue.\"}]}";
  return body;
}

/// The same request as a single-prompt /v1/completions body, sampled alike for every request
/// (temperature 0), so a prompt_array endpoint may merge them.
std::string completion_body(const std::string& model, uint32_t max_tokens, const std::string& nonce,
                            const char* what, uint64_t n) {
  std::string body = "{\"model\":\"";
  body += model;
  body += "\",\"max_tokens\":";
  body += std::to_string(max_tokens);
  body += ",\"temperature\":0,\"prompt\":\"scheduling bench ";
  body += nonce;
  body += ' ';
  body += what;
  body += " request ";
  body += std::to_string(n);
  body += ": explain in a few sentences why a shared GPU needs a priority queue.\"}";
  return body;
}

std::string run_nonce() {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  char buf[32];
  std::snprintf(buf, sizeof buf, "%" PRIx64, static_cast<uint64_t>(ns));
  return buf;
}

/// `command_line` with every non-empty secret replaced by KEY: reports go into docs.
std::string masked(std::string command_line, const std::vector<std::string>& secrets) {
  for (const auto& s : secrets) {
    if (s.empty()) continue;
    for (size_t p = command_line.find(s); p != std::string::npos; p = command_line.find(s, p))
      command_line.replace(p, s.size(), "KEY");
  }
  return command_line;
}

open_loop_options options_of(const std::string& target, double seconds, const open_loop_bounds& b) {
  open_loop_options o;
  o.url = "http://" + target + "/v1/chat/completions";
  o.seconds = seconds;
  o.max_requests = b.max_requests;
  o.max_in_flight = b.max_in_flight;
  o.drain_seconds = b.drain_seconds;
  o.timeout_ms = static_cast<long>(b.timeout_seconds * 1000);
  return o;
}

/// The load and the watcher together; the watcher's figures land in `w`.
open_loop_report run_with_watch(const open_loop_options& o,
                                const std::vector<open_loop_stream>& streams,
                                const std::string& sim, const sim_model& m, sim_watch& w) {
  std::atomic<bool> stop{false};
  const auto t0 = clock_type::now();
  std::thread watcher([&] { w = watch_sim(sim, m, t0, o.seconds, stop); });
  open_loop_report r = run_open_loop(o, streams);
  stop = true;
  watcher.join();
  return r;
}

void print_sim_lines(const sim_model& m, const sim_watch& w, double seconds) {
  const double peak_tokens = m.tokens_per_sec * m.throughput(m.max_batch);
  std::printf(
      "Simulated GPU utilisation over the %.0f s of arrivals: **%s** (tcsim's definition, the "
      "time average of throughput(n)/throughput(max_batch), from its batch occupancy n sampled "
      "%" PRIu64
      " times; mean n %s of %u, mean waiting in tcsim %s). tcsim's own figure over "
      "its last ~10 s as the arrivals stopped: %s. tcsim generated %s completion tokens/s then "
      "(%s of its %s at a full batch).\n\n",
      seconds, num(w.util, 3).c_str(), w.samples, num(w.mean_active, 1).c_str(), m.max_batch,
      num(w.mean_waiting, 1).c_str(), num(w.util_recent, 3).c_str(),
      num(w.span > 0 ? w.tokens / w.span : -1, 0).c_str(),
      num(w.span > 0 && peak_tokens > 0 ? w.tokens / w.span / peak_tokens : -1, 3).c_str(),
      num(peak_tokens, 0).c_str());
  if (!w.ok) std::printf("tcsim's /metrics did not answer at the start or the end of the run.\n\n");
}

void print_client_lines(const open_loop_report& r, const open_loop_bounds& b, double seconds) {
  uint64_t queue_seen = 0, ok = 0, unavailable = 0, no_retry_after = 0;
  for (const auto& x : r.results) {
    if (x.status == 503) {
      ++unavailable;
      if (x.retry_after < 0) ++no_retry_after;
    }
    if (x.status != 200) continue;
    ++ok;
    if (x.queue_ms >= 0) ++queue_seen;
  }
  std::printf(
      "Latency counts from each request's scheduled send time (a late client hides no "
      "queueing); completed req/s and tokens/s count the 200s that ended within the %.0f s of "
      "arrivals. Skipped: due while %u requests of their class were in flight (the client's cap), "
      "never sent. "
      "No answer: transport errors, the %.0f s request timeout, or still in flight %.0f s after "
      "the arrivals stopped. Peak in flight %u; the latest request left %.1f ms after its "
      "scheduled time; the last answer came at %.1f s.\n\n",
      seconds, b.max_in_flight, b.timeout_seconds, b.drain_seconds, r.peak_in_flight,
      r.max_lag_s * 1000, r.ended_s);
  if (ok > 0 && queue_seen == 0) {
    std::printf("No answer carried `x-tc-queue-ms`, so queue waits are NA.\n\n");
  } else if (queue_seen < ok) {
    std::printf("`x-tc-queue-ms` on %" PRIu64 " of %" PRIu64 " answers.\n\n", queue_seen, ok);
  }
  if (no_retry_after > 0) {
    std::printf("%" PRIu64 " of the %" PRIu64 " 503 answers had no `Retry-After`.\n\n",
                no_retry_after, unavailable);
  }
}

/// Checks the targets and reads tcsim's settings: 0, or the exit code (2 bad targets, 1 no tcsim).
/// On 0 the caller owns a curl_global_init.
int prepare(const std::string& target, const std::string& sim, const char* tool, sim_model& m) {
  if (!loopback_targets(target, sim, tool)) return 2;
  raise_open_files();
  curl_global_init(CURL_GLOBAL_DEFAULT);
  if (!read_sim_model(sim, m)) {
    std::fprintf(stderr, "tcbench %s: no settings from tcsim at http://%s/sim/settings\n", tool,
                 sim.c_str());
    curl_global_cleanup();
    return 1;
  }
  return 0;
}

}  // namespace

int run_batching(const batching_args& a, const std::string& command_line) {
  if (!a.p0_key.empty() && !a.p1_key.empty()) {
    std::fprintf(stderr, "tcbench batching: give --p0-key or --p1-key, not both\n");
    return 2;
  }
  sim_model m;
  if (const int rc = prepare(a.target, a.sim, "batching", m); rc != 0) return rc;
  const std::string key = a.p0_key.empty() ? a.p1_key : a.p0_key;
  const int interactive_priority = !a.p0_key.empty() ? 0 : !a.p1_key.empty() ? 1 : 2;
  const std::string interactive_name =
      interactive_priority == 0   ? "interactive: P0 (key of priority 0)"
      : interactive_priority == 1 ? "interactive: P1 (key of priority 1)"
                                  : "interactive: P2 (anonymous, no header)";
  const std::string nonce = run_nonce();
  std::vector<open_loop_stream> streams(2);
  streams[0].rate = a.rate * a.interactive_share;
  streams[0].phase = 0.5;
  if (!key.empty()) streams[0].headers.push_back("Authorization: Bearer " + key);
  auto body = [&](const char* what, uint64_t n) {
    return a.completions ? completion_body(a.model, a.max_tokens, nonce, what, n)
                         : chat_body(a.model, a.max_tokens, nonce, what, n);
  };
  streams[0].body = [&](uint64_t n) { return body("interactive", n); };
  streams[1].rate = a.rate * (1 - a.interactive_share);
  streams[1].headers.push_back("x-tc-priority: 3");
  streams[1].body = [&](uint64_t n) { return body("batch", n); };

  sim_watch w;
  open_loop_options o = options_of(a.target, a.seconds, a.bounds);
  if (a.completions) o.url = "http://" + a.target + "/v1/completions";
  const open_loop_report r = run_with_watch(o, streams, a.sim, m, w);
  curl_global_cleanup();

  const class_stats inter = stats_of(r, 0, a.seconds);
  const class_stats batch = stats_of(r, 1, a.seconds);
  const class_stats all = stats_of(r, all_streams, a.seconds);
  const double capacity = m.rate_at(m.max_batch, a.max_tokens);
  const double alone = m.rate_at(1, a.max_tokens);
  std::printf(
      "%s%s%.1f req/s offered open loop for %.0f s (arrivals evenly spaced, whatever the "
      "answers): %.0f%% %s, %.0f%% batch: P3 (anonymous, `x-tc-priority: 3`). max_tokens %u, "
      "non-stream%s, every prompt unique, `Cache-Control: no-cache`. tcsim: max_batch %u, "
      "contention %.3g, %.0f tokens/s per sequence alone, TTFT %.0f ms, %.1f completion tokens "
      "per answer on average: a full batch completes %s req/s (the offered load is %s of it), "
      "one sequence alone %s req/s.\n\n",
      a.label.empty() ? "" : "Run `", a.label.empty() ? "" : (a.label + "`: ").c_str(), a.rate,
      a.seconds, a.interactive_share * 100, interactive_name.c_str(),
      (1 - a.interactive_share) * 100, a.max_tokens,
      a.completions ? " single-prompt `/v1/completions` (temperature 0)" : " chat", m.max_batch,
      m.contention, m.tokens_per_sec, m.ttft_ms, m.mean_tokens(a.max_tokens),
      num(capacity, 1).c_str(),
      capacity > 0 ? (num(a.rate / capacity * 100, 0) + "%").c_str() : "NA", num(alone, 1).c_str());
  print_class_header();
  print_class_row(interactive_name, inter, a.seconds);
  print_class_row("batch: P3", batch, a.seconds);
  print_class_row("all", all, a.seconds);
  std::printf("\n");
  print_sim_lines(m, w, a.seconds);
  print_client_lines(r, a.bounds, a.seconds);
  std::printf("Command: `%s`\n\n", masked(command_line, {a.p0_key, a.p1_key}).c_str());

  std::string s = "SUMMARY mode=batching label=" + (a.label.empty() ? "-" : a.label);
  s += " offered_rps=" + num(a.rate, 2) + " seconds=" + num(a.seconds, 1) +
       " interactive_share=" + num(a.interactive_share, 3) +
       " interactive_priority=" + std::to_string(interactive_priority) +
       " capacity_rps=" + num(capacity, 2) + " alone_rps=" + num(alone, 2) +
       " util=" + num(w.util, 4) + " util_sim_recent=" + num(w.util_recent, 4) +
       " sim_tokens_per_s=" + num(w.span > 0 ? w.tokens / w.span : -1, 1) +
       " peak_in_flight=" + std::to_string(r.peak_in_flight);
  add_class_summary(s, "", all, a.seconds);
  add_class_summary(s, "i_", inter, a.seconds);
  add_class_summary(s, "b_", batch, a.seconds);
  std::printf("%s\n", s.c_str());
  std::fflush(stdout);
  if (all.ok == 0) {
    std::fprintf(stderr, "tcbench batching: not one request was answered 200\n");
    return 1;
  }
  return w.ok ? 0 : 1;
}

int run_flood(const flood_args& a, const std::string& command_line) {
  sim_model m;
  if (const int rc = prepare(a.target, a.sim, "flood", m); rc != 0) return rc;
  const std::string nonce = run_nonce();
  const double flood_rate = a.capacity_rps * a.flood_factor;
  std::vector<open_loop_stream> streams(2);
  streams[0].rate = a.p0_rate;
  streams[0].phase = 0.5;
  streams[0].headers.push_back("Authorization: Bearer " + a.p0_key);
  streams[0].body = [&](uint64_t n) { return chat_body(a.model, a.max_tokens, nonce, "p0", n); };
  streams[1].rate = flood_rate;
  streams[1].headers.push_back("x-tc-priority: 4");
  streams[1].body = [&](uint64_t n) { return chat_body(a.model, a.max_tokens, nonce, "p4", n); };

  sim_watch w;
  const open_loop_report r =
      run_with_watch(options_of(a.target, a.seconds, a.bounds), streams, a.sim, m, w);
  curl_global_cleanup();

  const class_stats p0 = stats_of(r, 0, a.seconds);
  const class_stats p4 = stats_of(r, 1, a.seconds);
  const double derived = m.rate_at(m.max_batch, a.max_tokens);
  std::printf(
      "%s%sP4 flood: %.1f req/s (%.3g x %.1f req/s of capacity) anonymous with "
      "`x-tc-priority: 4`; P0 trickle: %.2f req/s with a key of priority 0; open loop for "
      "%.0f s, max_tokens %u, non-stream, unique prompts, `Cache-Control: no-cache`. (tcsim's "
      "settings give %s req/s at a full batch of %u.)\n\n",
      a.label.empty() ? "" : "Run `", a.label.empty() ? "" : (a.label + "`: ").c_str(), flood_rate,
      a.flood_factor, a.capacity_rps, a.p0_rate, a.seconds, a.max_tokens, num(derived, 1).c_str(),
      m.max_batch);
  print_class_header();
  print_class_row("P0 (key)", p0, a.seconds);
  print_class_row("P4 flood", p4, a.seconds);
  std::printf("\n");
  std::printf(
      "**P0 queue wait** (`x-tc-queue-ms`, %" PRIu64 " of %" PRIu64
      " answers carried it): p50 %s ms, p95 **%s ms**, p99 %s ms. P0 latency p95 %s ms.\n\n",
      p0.queue_seen, p0.ok, num(pct(p0.queue_ms, 50), 0).c_str(),
      num(pct(p0.queue_ms, 95), 0).c_str(), num(pct(p0.queue_ms, 99), 0).c_str(),
      num(pct(p0.latency_ms, 95)).c_str());

  // P4 progress per window, by the time each answer ended.
  const double ws = a.window_seconds;
  const auto windows = static_cast<size_t>(std::ceil(std::max(r.ended_s, a.seconds) / ws));
  std::vector<uint64_t> p4_ok(windows + 1), p4_503(windows + 1), p0_ok(windows + 1);
  for (const auto& x : r.results) {
    const auto i = std::min(windows, static_cast<size_t>(std::max(0.0, x.end_s) / ws));
    if (x.stream == 1 && x.status == 200) ++p4_ok[i];
    if (x.stream == 1 && x.status == 503) ++p4_503[i];
    if (x.stream == 0 && x.status == 200) ++p0_ok[i];
  }
  std::printf(
      "P4 progress by %.0f s window (answers by the time they ended; arrivals stop at %.0f "
      "s):\n\n| window s | P4 200 | P4 200/s | P4 503 | P0 200 |\n|---|---:|---:|---:|---:|\n",
      ws, a.seconds);
  double min_rate = -1;
  for (size_t i = 0; i < windows; ++i) {
    const double from = i * ws, to = (i + 1) * ws;
    std::printf("| %.0f-%.0f%s | %" PRIu64 " | %.1f | %" PRIu64 " | %" PRIu64 " |\n", from, to,
                to > a.seconds ? " (drain)" : "", p4_ok[i], p4_ok[i] / ws, p4_503[i], p0_ok[i]);
    // Windows wholly inside the flood, after the first (which holds the ramp-up).
    if (i > 0 && to <= a.seconds) {
      const double rate = p4_ok[i] / ws;
      min_rate = min_rate < 0 ? rate : std::min(min_rate, rate);
    }
  }
  std::printf(
      "\nP4 completions in the slowest full window of the flood (the first left out): %s "
      "req/s.\n\n",
      num(min_rate, 1).c_str());
  print_sim_lines(m, w, a.seconds);
  print_client_lines(r, a.bounds, a.seconds);
  std::printf("Command: `%s`\n\n", masked(command_line, {a.p0_key}).c_str());

  std::string s = "SUMMARY mode=flood label=" + (a.label.empty() ? "-" : a.label);
  s += " capacity_rps=" + num(a.capacity_rps, 2) + " flood_rps=" + num(flood_rate, 2) +
       " p0_rate=" + num(a.p0_rate, 2) + " seconds=" + num(a.seconds, 1) +
       " derived_capacity_rps=" + num(derived, 2) + " util=" + num(w.util, 4) +
       " util_sim_recent=" + num(w.util_recent, 4) + " p4_min_window_rps=" + num(min_rate, 2) +
       " peak_in_flight=" + std::to_string(r.peak_in_flight);
  add_class_summary(s, "p0_", p0, a.seconds);
  add_class_summary(s, "p4_", p4, a.seconds);
  std::printf("%s\n", s.c_str());
  std::fflush(stdout);
  if (p0.ok + p4.ok == 0) {
    std::fprintf(stderr, "tcbench flood: not one request was answered 200\n");
    return 1;
  }
  return w.ok ? 0 : 1;
}

}  // namespace tc::bench
