// tcbench affinity (issue 6): see affinity.hpp. Blocking libcurl clients, one thread each; a
// watcher reads tc_endpoint_in_flight per replica from the node's /metrics every 20 ms.
#include "tools/tcbench/affinity.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
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

/// A system prompt of about 1 KB: the shared one (index 0) or one of the others.
std::string system_prompt(uint32_t index) {
  std::string p = "You are assistant " + std::to_string(index) +
                  " of the ACME service desk. Answer politely and briefly, cite the policy "
                  "number you rely on, never invent an order number, and hand over to a human "
                  "when the customer asks for one. ";
  while (p.size() < 1000) p += "Keep the customer's data private. ";
  return p;
}

/// Every tc_endpoint_in_flight sample of `model`, by provider.
std::map<std::string, double> in_flight_of(const std::string& text, const std::string& model) {
  std::map<std::string, double> out;
  const std::string family = "tc_endpoint_in_flight{";
  const std::string model_label = "model=\"" + model + "\"";
  size_t pos = 0;
  while ((pos = text.find(family, pos)) != std::string::npos) {
    const size_t end = text.find('\n', pos);
    const std::string line = text.substr(pos, end == std::string::npos ? end : end - pos);
    pos = end == std::string::npos ? text.size() : end;
    if (line.find(model_label) == std::string::npos) continue;
    const size_t p = line.find("provider=\"");
    const size_t sp = line.rfind(' ');
    if (p == std::string::npos || sp == std::string::npos) continue;
    const size_t q = line.find('"', p + 10);
    out[line.substr(p + 10, q - p - 10)] = std::strtod(line.c_str() + sp + 1, nullptr);
  }
  return out;
}

}  // namespace

int run_affinity(const affinity_args& a, const std::string& command_line) {
  if (!loopback_targets(a.target, a.admin, "affinity")) return 2;
  curl_global_init(CURL_GLOBAL_DEFAULT);
  const auto t0 = clock_type::now();
  const auto since = [&] { return std::chrono::duration<double>(clock_type::now() - t0).count(); };
  std::mutex mx;
  std::map<std::string, uint64_t> answers;  // provider -> answered requests
  uint64_t failed = 0;
  std::atomic<bool> stop{false};

  std::vector<std::thread> clients;
  for (uint32_t c = 0; c < a.clients; ++c) {
    clients.emplace_back([&, c] {
      CURL* h = curl_easy_init();
      curl_slist* headers = nullptr;
      headers = curl_slist_append(headers, "Content-Type: application/json");
      headers = curl_slist_append(headers, "Cache-Control: no-cache");
      const std::string url = "http://" + a.target + "/v1/chat/completions";
      uint64_t state = 0x9e3779b97f4a7c15ULL * (c + 1);
      for (uint64_t n = 0; !stop.load() && n < 10'000'000; ++n) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        const double u = static_cast<double>(state % 1'000'000) / 1e6;
        const uint32_t which = u < a.shared ? 0 : 1 + static_cast<uint32_t>(state % a.prompts);
        std::string body = "{\"model\":\"";
        body += a.model;
        body += "\",\"max_tokens\":";
        body += std::to_string(a.max_tokens);
        body += ",\"messages\":[{\"role\":\"system\",\"content\":\"";
        body += system_prompt(which);
        body += "\"},{\"role\":\"user\",\"content\":\"question ";
        body += std::to_string(c);
        body += "-";
        body += std::to_string(n);
        body += "\"}]}";
        response_state r;
        set_post(h, url, headers, body, r);
        long status = 0;
        const bool ok = curl_easy_perform(h) == CURLE_OK &&
                        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK &&
                        status == 200;
        std::lock_guard<std::mutex> lock(mx);
        if (ok)
          ++answers[r.provider];
        else
          ++failed;
      }
      curl_slist_free_all(headers);
      curl_easy_cleanup(h);
    });
  }

  std::map<std::string, double> load_sum;  // provider -> sum of in-flight samples
  uint64_t samples = 0;
  std::thread watcher([&] {
    CURL* h = curl_easy_init();
    const std::string url = "http://" + a.admin + "/metrics";
    while (!stop.load()) {
      // The first second warms up; the last samples race the clients' stop.
      if (since() > 1.0) {
        const auto now = in_flight_of(get_text(h, url), a.model);
        if (!now.empty()) {
          for (const auto& [p, v] : now) load_sum[p] += v;
          ++samples;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    curl_easy_cleanup(h);
  });
  while (since() < a.seconds) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  stop = true;
  for (auto& t : clients) t.join();
  watcher.join();
  curl_global_cleanup();

  uint64_t total = 0;
  for (const auto& [p, n] : answers) total += n;
  double load_total = 0;
  for (const auto& [p, v] : load_sum) load_total += v;
  const double replicas = static_cast<double>(std::max<size_t>(1, load_sum.size()));
  const double mean_answers = static_cast<double>(total) / replicas;
  const double mean_load = samples == 0 ? 0 : load_total / static_cast<double>(samples) / replicas;
  std::printf(
      "%u clients, %.0f%% of requests with one shared ~1 KB system prompt (the rest over "
      "%u others), max_tokens %u, %.0f s; %llu answered, %llu failed; in-flight sampled "
      "%llu times.\n\n",
      a.clients, a.shared * 100, a.prompts, a.max_tokens, a.seconds,
      static_cast<unsigned long long>(total), static_cast<unsigned long long>(failed),
      static_cast<unsigned long long>(samples));
  std::printf(
      "| replica | answered | x mean | mean in flight | x mean |\n|---|---:|---:|---:|---:|\n");
  double worst = 0;
  for (const auto& [p, sum] : load_sum) {
    const double n = static_cast<double>(answers.count(p) ? answers.at(p) : 0);
    const double load = samples == 0 ? 0 : sum / static_cast<double>(samples);
    const double ratio = mean_load > 0 ? load / mean_load : 0;
    worst = std::max(worst, ratio);
    std::printf("| %s | %.0f | %.3f | %.2f | %.3f |\n", p.c_str(), n,
                mean_answers > 0 ? n / mean_answers : 0, load, ratio);
  }
  std::printf("\nBusiest replica: %.3f x the mean load (requests in flight, time-averaged).\n\n",
              worst);
  std::printf("Command: `%s`\n", command_line.c_str());
  return failed == 0 && worst <= a.bound ? 0 : 1;
}

}  // namespace tc::bench
