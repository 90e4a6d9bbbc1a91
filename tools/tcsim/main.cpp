// tcsim: the simulated GPU provider (a test double) served over HTTP on one libuv loop.
//
//   POST/GET /v1/...   the OpenAI endpoints (chat/completions, completions, embeddings,
//                      moderations, models), answered by tc::sim::provider
//   POST /v1/messages  Anthropic's Messages API, answered by the same provider
//   GET  /metrics      Prometheus text of the provider's counters
//   GET  /healthz      200
//   GET  /sim/settings the current sim_settings as JSON
//   POST /sim/settings a JSON object with any subset of the fields: applied at once (faults)
//
// Prints one line `ready sim=HOST:PORT` once listening; SIGTERM/SIGINT shut down gracefully
// (a second signal closes everything at once) and exit 0.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <uv.h>
#include <CLI/CLI.hpp>

#include "config/settings.hpp"
#include "node/http/server.hpp"
#include "node/sim/provider.hpp"
#include "node/sim/settings_json.hpp"

namespace {

using tc::http::header_list;

/// One proxied call: the responder and what the provider has said so far.
struct relay {
  tc::http::responder res;
  tc::upstream::call_id id = 0;
  bool streaming = false;
  bool finished = false;
  int status = 0;
  header_list headers;
  std::string body;
};

std::string error_json(std::string_view message) {
  std::string out = R"({"error":{"message":")";
  for (char c : message) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) >= 0x20) out += c;
  }
  out += R"(","type":"invalid_request_error","param":null,"code":null}})";
  return out;
}

void relay_to_provider(tc::sim::provider& sim, tc::http::request&& req, tc::http::responder res) {
  auto rl = std::make_shared<relay>();
  rl->res = res;
  tc::upstream::call_request call;
  call.method = req.method;
  call.url = "http://tcsim" + req.target;
  call.body = std::move(req.body);
  tc::upstream::call_handlers h;
  h.on_headers = [rl](int status, std::vector<std::pair<std::string, std::string>>&& headers) {
    rl->status = status;
    rl->headers = std::move(headers);
    for (const auto& [k, v] : rl->headers) {
      if (k == "content-type" && v.rfind("text/event-stream", 0) == 0) rl->streaming = true;
    }
    if (rl->streaming) rl->res.start(status, rl->headers);
  };
  h.on_data = [rl, &sim](std::string_view data) {
    if (!rl->streaming) {
      rl->body.append(data);
      return;
    }
    rl->res.write(std::string(data));
    if (rl->res.congested()) {  // back-pressure: hold the call until the socket drains
      sim.pause(rl->id);
      rl->res.on_drain([rl, &sim] { sim.resume(rl->id); });
    }
  };
  h.on_complete = [rl](tc::upstream::call_result&& r) {
    rl->finished = true;
    if (rl->streaming) {
      rl->res.end();
    } else {
      rl->res.send(rl->status, rl->headers, std::move(rl->body));
    }
  };
  rl->id = sim.start(std::move(call), std::move(h));
  if (rl->id == 0) {
    res.send(503, {{"content-type", "application/json"}}, error_json("tcsim is shutting down"));
    return;
  }
  res.on_close([rl, &sim] {
    if (!rl->finished) sim.cancel(rl->id);
  });
}

struct app_state {
  uv_loop_t* loop = nullptr;
  tc::sim::provider* sim = nullptr;
  tc::http::server* server = nullptr;
  uv_signal_t sigterm{};
  uv_signal_t sigint{};
  uint32_t grace_ms = 10'000;
  bool stopping = false;
};

void on_signal(uv_signal_t* h, int) {
  auto* st = static_cast<app_state*>(h->data);
  if (st->stopping) {  // second signal: close everything now
    st->server->close_all();
    return;
  }
  st->stopping = true;
  st->server->shutdown(st->grace_ms, [st] {
    st->server->close_all();
    st->sim->close();
    uv_close(reinterpret_cast<uv_handle_t*>(&st->sigterm), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&st->sigint), nullptr);
  });
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tcsim: a simulated OpenAI-compatible GPU endpoint (a test double)"};
  std::string listen = "127.0.0.1:8000";
  tc::config::sim_settings s;
  std::vector<std::string> outages;
  bool instant = false;
  uint32_t grace_ms = 10'000;
  app.add_option("--listen", listen, "HOST:PORT to listen on; port 0 picks a free port")
      ->capture_default_str();
  app.add_option("--ttft-ms", s.ttft_ms, "time to first token (ms)")->capture_default_str();
  app.add_option("--tokens-per-sec", s.tokens_per_sec, "per-sequence decode rate alone")
      ->capture_default_str();
  app.add_option("--max-batch", s.max_batch, "concurrent sequences; more wait for a slot")
      ->capture_default_str();
  app.add_option("--batch-contention", s.batch_contention,
                 "c in per-sequence rate = tokens_per_sec / (1 + c*(n-1))")
      ->capture_default_str();
  app.add_option("--default-max-tokens", s.default_max_tokens,
                 "completion length bound when the request sets no max_tokens")
      ->capture_default_str();
  app.add_option("--embedding-dim", s.embedding_dim, "embedding length without 'dimensions'")
      ->capture_default_str();
  app.add_option("--prefix-cache-entries", s.prefix_cache_entries,
                 "leading system prompts the simulated prefix cache remembers (0: none)")
      ->capture_default_str();
  app.add_option("--error-rate", s.error_rate, "fraction of calls answered with --error-status")
      ->capture_default_str();
  app.add_option("--error-status", s.error_status, "HTTP status of injected errors")
      ->capture_default_str();
  app.add_option("--spike-rate", s.spike_rate, "fraction of calls whose TTFT grows by spike-ms")
      ->capture_default_str();
  app.add_option("--spike-ms", s.spike_ms, "extra TTFT of a spike (ms)")->capture_default_str();
  app.add_option("--outage", outages,
                 "START:END seconds since start during which every call gets 503 (repeatable)");
  app.add_option("--seed", s.seed, "mixed into every request's seed")->capture_default_str();
  app.add_flag("--instant", instant, "answer at once: ttft 0 and tokens-per-sec 0");
  app.add_option("--shutdown-grace-ms", grace_ms, "graceful shutdown deadline")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  if (instant) {
    s.ttft_ms = 0;
    s.tokens_per_sec = 0;
  }
  for (const auto& spec : outages) {
    tc::config::sim_outage o;
    if (!tc::sim::parse_outage(spec, o)) {
      std::fprintf(stderr, "tcsim: bad --outage '%s' (want START:END seconds)\n", spec.c_str());
      return 2;
    }
    s.outages.push_back(o);
  }
  {  // the same bounds as POST /sim/settings
    tc::config::sim_settings checked;
    std::string err;
    if (!tc::sim::apply_settings_json(tc::sim::settings_to_json(s), checked, err)) {
      std::fprintf(stderr, "tcsim: %s\n", err.c_str());
      return 2;
    }
  }
  std::string host;
  uint16_t port_in = 0;
  if (!tc::http::split_host_port(listen, host, port_in)) {
    std::fprintf(stderr, "tcsim: bad --listen '%s' (want HOST:PORT)\n", listen.c_str());
    return 2;
  }

  uv_loop_t* loop = uv_default_loop();
  tc::sim::provider sim(loop, s);
  tc::http::server server(
      loop, tc::http::limits{}, [&sim](tc::http::request&& req, tc::http::responder res) {
        const std::string& p = req.path;
        if (p == "/metrics" && req.method == "GET") {
          res.send(200, {{"content-type", "text/plain; version=0.0.4"}}, sim.metrics_text());
        } else if (p == "/healthz") {
          res.send(200, {{"content-type", "text/plain"}}, "ok\n");
        } else if (p == "/sim/settings" && req.method == "GET") {
          res.send(200, {{"content-type", "application/json"}},
                   tc::sim::settings_to_json(sim.settings()));
        } else if (p == "/sim/settings" && req.method == "POST") {
          tc::config::sim_settings next = sim.settings();
          std::string err;
          if (!tc::sim::apply_settings_json(req.body, next, err)) {
            res.send(400, {{"content-type", "application/json"}}, error_json(err));
            return;
          }
          sim.update(next);
          res.send(200, {{"content-type", "application/json"}}, tc::sim::settings_to_json(next));
        } else {
          relay_to_provider(sim, std::move(req), res);
        }
      });
  int port = server.listen(host, port_in);
  if (port < 0) {
    std::fprintf(stderr, "tcsim: cannot listen on %s: %s\n", listen.c_str(), uv_strerror(port));
    return 1;
  }

  app_state st;
  st.loop = loop;
  st.sim = &sim;
  st.server = &server;
  st.grace_ms = grace_ms;
  uv_signal_init(loop, &st.sigterm);
  uv_signal_init(loop, &st.sigint);
  st.sigterm.data = st.sigint.data = &st;
  uv_signal_start(&st.sigterm, on_signal, SIGTERM);
  uv_signal_start(&st.sigint, on_signal, SIGINT);

  const std::string shown = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  std::printf("ready sim=%s:%d\n", shown.c_str(), port);
  std::fflush(stdout);
  uv_run(loop, UV_RUN_DEFAULT);
  sim.close();
  uv_run(loop, UV_RUN_DEFAULT);  // close callbacks
  return 0;
}
