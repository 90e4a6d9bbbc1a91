#include "node/io_loop.hpp"

#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <optional>
#include <random>
#include <tuple>
#include <utility>
#include <vector>

#include "actors/provider_health.hpp"
#include "node/http/server.hpp"
#include "node/log.hpp"
#include "node/sim/provider.hpp"
#include "node/upstream/curl_client.hpp"
#include "protocol/anthropic/error.hpp"
#include "protocol/anthropic/request.hpp"
#include "protocol/anthropic/response.hpp"
#include "protocol/anthropic/stream.hpp"
#include "protocol/openai/answer.hpp"
#include "protocol/openai/models.hpp"
#include "protocol/openai/request.hpp"
#include "protocol/openai/sse.hpp"
#include "protocol/openai/stream.hpp"
#include "protocol/openai/text.hpp"

namespace tc::node {

namespace {

constexpr std::size_t max_upstream_body = 64 * 1024 * 1024;
/// Idle connection actors kept per loop; beyond this they exit when their request ends.
constexpr std::size_t max_idle_actors = 4096;

/// A command from the actor world to this loop.
struct dispatch_cmd {
  upstream_plan plan;
};
struct reject_cmd {
  reply_target to;
  openai::api_error error;
  rate_headers rate;
};
struct serve_cmd {
  cached_reply reply;
};
struct attach_cmd {
  reply_target leader;
  caf::actor follower;
  canonical::digest key;
};
struct follow_cmd {
  follow_chunk chunk;
};
struct release_cmd {
  reply_target to;
};
struct side_cmd {
  actors::side_call call;
};
using control_cmd = std::function<void()>;
using command = std::variant<std::monostate, dispatch_cmd, reject_cmd, serve_cmd, attach_cmd,
                             follow_cmd, release_cmd, side_cmd, control_cmd>;

/// The largest answer a side call keeps (a moderation verdict is small).
constexpr std::size_t max_side_answer = 1024 * 1024;

/// The largest answer kept for the cache; a larger one is relayed but not stored.
constexpr std::size_t max_captured_answer = 4 * 1024 * 1024;

/// A reset time the way OpenAI writes it: "20ms", "1.5s", "6m0s".
std::string reset_text(uint32_t ms) {
  if (ms < 1000) return std::to_string(ms) + "ms";
  if (ms < 60'000) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3g", ms / 1000.0);
    return std::string(buf) + "s";
  }
  return std::to_string(ms / 60'000) + "m" + std::to_string(ms % 60'000 / 1000) + "s";
}

uint64_t ns_since(uint64_t start_ns, uint64_t end_ns) {
  return end_ns > start_ns ? end_ns - start_ns : 0;
}

double seconds(uint64_t ns) {
  return static_cast<double>(ns) / 1e9;
}

bool valid_request_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
  });
}

/// W3C traceparent "00-<32 hex trace>-<16 hex span>-<2 hex flags>".
bool valid_traceparent(std::string_view tp) {
  if (tp.size() != 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-') return false;
  for (std::size_t i = 0; i < tp.size(); ++i) {
    if (i == 2 || i == 35 || i == 52) continue;
    char c = tp[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

void append_hex(std::string& out, uint64_t v, int digits) {
  static constexpr char hex[] = "0123456789abcdef";
  for (int i = digits - 1; i >= 0; --i) out += hex[(v >> (i * 4)) & 0xf];
}

}  // namespace

/// What a request whose outcome went out `held` still has to send.
enum class held_kind : uint8_t {
  none,
  body,    ///< a whole non-stream response
  stream,  ///< a whole stream (a cache hit): status line, events, end
  tail,    ///< a started stream's usage chunk, [DONE] and end
};

/// One client request between its arrival and its end, owned by the loop.
struct pending {
  http::responder client;
  std::string request_id;
  rate_headers rate;  ///< the x-ratelimit-* headers the response carries
  std::string traceparent;
  std::string model;
  std::string provider;
  caf::actor actor;  ///< the connection actor serving this request (from the loop's pool)
  std::unique_ptr<actors::lane_request> lane;  ///< or the loop itself: an exact hit (no actor)
  uint64_t received_ns = 0;
  uint64_t upstream_start_ns = 0;
  upstream::transport* transport = nullptr;
  upstream::call_id call = 0;
  bool calling = false;
  bool dispatched = false;  ///< the actor dispatched (an outcome is owed), or it rejected
  bool stream = false;
  bool started = false;  ///< the client stream has started (status line sent)
  bool saw_done = false;
  bool client_gone = false;
  int upstream_status = 0;
  std::string upstream_content_type;
  std::string retry_after;
  std::string body;  ///< non-stream upstream body
  openai::sse_splitter splitter;
  std::optional<openai::usage> usage;
  uint64_t upstream_ns = 0;
  uint64_t ttft_ns = 0;
  bool stream_cut = false;
  std::string upstream_failure;
  metrics::route_series* series = nullptr;  ///< set once the provider is known
  // The cache (issue 3).
  bool capture = false;      ///< keep the answer for the cache (plan.capture)
  bool strip_usage = false;  ///< drop the stream's usage chunk (the client did not ask)
  uint32_t chunks = 0;       ///< stream content events relayed (an estimate of tokens sent)
  size_t sent_bytes = 0;     ///< a non-stream answer's body size
  std::optional<openai::stream_assembler> assembler;  ///< a captured stream's answer so far
  std::string answer;                                 ///< the captured answer in non-stream form
  bool answer_cacheable = false;
  std::string error_body;  ///< the error the client got (followers get it too)
  // Dedup (issue 3): a leader keeps its stream's events for followers that join late.
  bool dedup_leader = false;
  std::vector<std::string> event_log;  ///< data payloads relayed so far (dedup leaders)
  std::size_t event_log_bytes = 0;
  std::vector<std::pair<caf::actor, canonical::digest>> followers;  ///< attached, streaming
  // Write-ahead (issue 4): a complete answer's last bytes wait until its usage record is
  // durable, so a client never holds an answer the ledger could lose in a crash.
  bool write_ahead = false;  ///< the plan asked for it
  held_kind held = held_kind::none;
  int held_status = 0;
  http::header_list held_headers;  ///< held_kind::body and ::stream: the response's headers
  std::string held_bytes;          ///< the body, the whole stream, or a stream's tail
  uint8_t acks = 1;                ///< release() calls still to come before the bytes go
  // Moderation and audit (issue 5).
  std::optional<actors::stream_guard> guard;  ///< step 11 of a stream: events wait for the scan
  std::vector<audit::engine_verdict> output_verdicts;
  bool filtered = false;         ///< output blocked: emptied, or cut with content_filter
  bool moderate_output = false;  ///< step 11 runs on this answer
  bool keep_output = false;      ///< keep what the client got in output_text (the audit record)
  std::string output_text;
  /// Instead of output_text: a cached answer served as stored, with its stored digest
  /// (request_outcome::output_digest).
  std::string output_digest;
  uint8_t output_digest_algo = 0;
  std::string filing_id;        ///< x-algorithm-filing-id and the body's algorithm_filing_id
  int64_t queue_ms = 0;         ///< x-tc-queue-ms: step 8's wait
  std::string tenant;           ///< for remote output engines
  bool filing_stamped = false;  ///< a stream's first chunk carries it already
  std::string last_chunk;       ///< a stream's last chunk (to end it as filtered)
  int final_status = 0;         ///< the status finish() reported
  uint64_t final_upstream_ns = 0;
  // Routing (issue 6): the endpoint called now, and where to go if it fails before a byte.
  uint32_t endpoint = 0;
  uint16_t endpoint_index = 0;
  uint8_t attempts = 0;
  bool in_flight_taken = false;  ///< plan.in_flight_taken
  uint32_t merged = 0;           ///< answered by a merged prompt_array call of this many
  std::string upstream_model;    ///< the model name the endpoint called now expects
  /// The endpoint called now speaks the Messages API: the body was translated, the answer is.
  bool anthropic = false;
  std::optional<anthropic::stream_translator> translator;  ///< its stream, into OpenAI chunks
  std::vector<upstream_attempt> fallbacks;
  size_t next_fallback = 0;
  std::string request_body;          ///< kept for the fallbacks (each renames the model)
  uint32_t timeouts[3] = {0, 0, 0};  ///< connect, first byte, total: of the attempt now
  std::string url;
};

struct io_loop::impl {
  impl(uint32_t index, const loop_context& ctx) : index(index), ctx(ctx), cache(*ctx.metrics) {
    uv_loop_init(&loop);
    const auto& s = ctx.settings->server;
    http::limits lim;
    lim.max_header_bytes = s.max_header_bytes;
    lim.max_body_bytes = s.max_body_bytes;
    lim.header_timeout_ms = s.header_timeout_ms;
    lim.body_timeout_ms = s.body_timeout_ms;
    lim.idle_timeout_ms = s.idle_timeout_ms;
    lim.max_pipelined = s.max_pipelined;
    lim.write_high_watermark = s.write_high_watermark;
    lim.write_low_watermark = s.write_high_watermark / 4;
    const uint32_t loops = std::max(1u, s.io_threads);  // the node's bound, shared by its loops
    lim.max_connections = (s.max_connections + loops - 1) / loops;
    server = std::make_unique<http::server>(
        &loop, lim,
        [this](http::request&& req, http::responder res) { on_request(std::move(req), res); });
    curl = std::make_unique<upstream::curl_client>(&loop);
    for (const auto& p : ctx.settings->providers) {
      if (p.type == "sim") {
        auto sim = std::make_unique<sim::provider>(&loop, p.sim);
        transports[p.name] = sim.get();
        const prometheus::Labels l{{"provider", p.name}, {"loop", std::to_string(index)}};
        sim_gauges.push_back(
            {&ctx.metrics->sim_utilisation.Add(l), &ctx.metrics->sim_active_sequences.Add(l)});
        sims.push_back(std::move(sim));
      } else {
        transports[p.name] = curl.get();
      }
      if (p.type == "anthropic") {
        anthropic_wire w;
        w.version_header = "anthropic-version: " + p.anthropic_version;
        w.options.max_tokens_default = p.anthropic_max_tokens;
        w.options.cache_control = p.cache_control == "system_and_tools"
                                      ? anthropic::cache_control::system_and_tools
                                      : anthropic::cache_control::none;
        anthropic_wires.emplace(p.name, std::move(w));
      }
    }
    uv_async_init(&loop, &wake, [](uv_async_t* h) { static_cast<impl*>(h->data)->drain(); });
    wake.data = this;
    uv_timer_init(&loop, &gauge_timer);
    uv_prepare_init(&loop, &flush_handle);
    flush_handle.data = this;
    uv_prepare_start(&flush_handle, [](uv_prepare_t* h) { static_cast<impl*>(h->data)->flush(); });
    uv_idle_init(&loop, &spin_handle);
    spin_handle.data = this;
    spin_ns = uint64_t{ctx.settings->server.poll_spin_us} * 1000;
    gauge_timer.data = this;
    std::random_device rd;
    id_state = (static_cast<uint64_t>(rd()) << 32) ^ rd() ^ (static_cast<uint64_t>(index) << 56);
    in_flight_gauge = &ctx.metrics->requests_in_flight.Add({{"loop", std::to_string(index)}});
    connections_gauge = &ctx.metrics->connections_open.Add({{"loop", std::to_string(index)}});
    protocol_errors = &ctx.metrics->protocol_errors_total.Add({{"loop", std::to_string(index)}});
    connections_refused =
        &ctx.metrics->connections_refused_total.Add({{"loop", std::to_string(index)}});
  }

  ~impl() {
    if (!handles_closed) {  // never ran (start-up failed): close what the constructor opened
      close_handles();
      uv_run(&loop, UV_RUN_DEFAULT);
    }
    uv_loop_close(&loop);
  }

  /// Closes every handle this loop owns, so that uv_run returns.
  void close_handles() {
    handles_closed = true;
    curl->close();
    for (auto& s : sims) s->close();
    server->close_all();
    uv_close(reinterpret_cast<uv_handle_t*>(&wake), nullptr);
    flush();
    for (auto& a : idle_actors) caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    idle_actors.clear();
    uv_prepare_stop(&flush_handle);
    uv_close(reinterpret_cast<uv_handle_t*>(&flush_handle), nullptr);
    uv_idle_stop(&spin_handle);
    spinning = false;
    uv_close(reinterpret_cast<uv_handle_t*>(&spin_handle), nullptr);
    uv_timer_stop(&gauge_timer);
    uv_close(reinterpret_cast<uv_handle_t*>(&gauge_timer), nullptr);
  }

  // -- actor world -> loop ---------------------------------------------------------------

  void post(command&& cmd) {
    queue.push(std::move(cmd));
    uv_async_send(&wake);
  }

  void drain() {
    command cmd;
    bool any = false;
    while (queue.try_pop(cmd)) {
      any = true;
      if (auto* d = std::get_if<dispatch_cmd>(&cmd)) {
        start_upstream(std::move(d->plan));
      } else if (auto* r = std::get_if<reject_cmd>(&cmd)) {
        if (auto it = requests.find(r->to.slot); it != requests.end()) it->second.rate = r->rate;
        if (r->error.code == "content_filter")
          ctx.metrics->moderation_blocks_total.Add({{"direction", "input"}}).Increment();
        finish_with_error(r->to.slot, r->error);
      } else if (auto* v = std::get_if<serve_cmd>(&cmd)) {
        serve_cached(std::move(v->reply));
      } else if (auto* a = std::get_if<attach_cmd>(&cmd)) {
        attach_follower(*a);
      } else if (auto* f = std::get_if<follow_cmd>(&cmd)) {
        follow_leader(std::move(f->chunk));
      } else if (auto* h = std::get_if<release_cmd>(&cmd)) {
        release(h->to.slot);
      } else if (auto* sc = std::get_if<side_cmd>(&cmd)) {
        side_call_for_actor(std::move(sc->call));
      } else if (auto* c = std::get_if<control_cmd>(&cmd)) {
        (*c)();
      }
      cmd = std::monostate{};
    }
    if (any) arm_spin();
  }

  /// Hands this iteration's work to the actor world in one burst, right before the loop
  /// blocks: the scheduler wakes once for many requests instead of once per message
  /// (measured: context switches per request are what the actor hops cost on 2 cores).
  void flush() {
    if (!to_settle.empty() || !to_start.empty() || !to_record.empty() || !to_health.empty())
      arm_spin();
    if (!to_settle.empty() && ctx.pipeline->accounts.settling)
      *ctx.pipeline->accounts.settling += static_cast<int64_t>(to_settle.size());
    for (auto& [actor, outcome] : to_settle) {
      caf::anon_send(actor, std::move(outcome));
      release_actor(std::move(actor));
    }
    to_settle.clear();
    for (auto& [actor, req, to, meta] : to_start)
      caf::anon_send(actor, std::move(req), to, std::move(meta));
    to_start.clear();
    for (auto& [actor, msg] : to_record) caf::anon_send(actor, std::move(msg));
    to_record.clear();
    for (auto& [actor, batch] : to_health) caf::anon_send(actor, std::move(batch));
    to_health.clear();
  }

  /// Low-load latency: after any work (a request, an upstream event, an actor's answer, work
  /// handed to actors) the loop polls for server.poll_spin_us instead of sleeping, so what
  /// comes next (the actor's answer, the upstream's, the client's next request) is picked up
  /// without a wake-up (measured on this project's VMs: tens of microseconds per sleeping hop).
  /// Only while the node has at most poll_spin_max_in_flight requests in flight: busier loops
  /// rarely sleep, and a spinning loop would take the CPU the answer needs. Bounded: polling
  /// stops poll_spin_us after the last work (an active idle handle makes libuv poll without
  /// blocking), so a long upstream call costs a few spins per event, not a core.
  void arm_spin() {
    if (spin_ns == 0 || handles_closed) return;
    if (ctx.in_flight->load(std::memory_order_relaxed) >
        static_cast<int64_t>(ctx.settings->server.poll_spin_max_in_flight))
      return;
    if (spinning) {
      // The next idle pass restarts the window: one clock read per pass, not one per piece of
      // work (several a request; a read costs 33-39 ns on the project's VMs).
      worked = true;
      return;
    }
    spin_until = uv_hrtime() + spin_ns;
    spinning = true;
    uv_idle_start(&spin_handle, [](uv_idle_t* h) {
      auto* self = static_cast<impl*>(h->data);
      const uint64_t now = uv_hrtime();
      if (self->worked) {
        self->worked = false;
        self->spin_until = now + self->spin_ns;
        return;
      }
      if (now < self->spin_until) return;
      uv_idle_stop(h);
      self->spinning = false;
    });
  }

  /// An idle connection actor from the pool, or a new one.
  caf::actor acquire_actor() {
    if (idle_actors.empty()) return ctx.system->spawn(actors::connection, ctx.pipeline);
    caf::actor a = std::move(idle_actors.back());
    idle_actors.pop_back();
    return a;
  }

  /// Back to the pool once its last message for a request is sent (its mailbox keeps order).
  void release_actor(caf::actor&& a) {
    if (idle_actors.size() < max_idle_actors) {
      idle_actors.push_back(std::move(a));
    } else {
      // Not exit_reason::normal: CAF's default exit handler ignores a normal exit message.
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    }
  }

  // -- client requests -------------------------------------------------------------------

  /// "req_" + the wall-clock millisecond (12 hex digits) + 64 random bits (16): unique as the
  /// random part alone was, and ordered by time, so the ledger's keys built from it are written
  /// near the end of its key range instead of all over it (measured: random ids made the
  /// ledger's memtable inserts and lookups the node's largest CPU cost under load).
  std::string next_request_id() {
    std::string id = "req_";
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
    append_hex(id, static_cast<uint64_t>(ms), 12);
    append_hex(id, next_id_bits(), 16);
    return id;
  }

  /// OpenAI's x-ratelimit-* headers, for the limits that apply (none: no headers).
  static void add_rate_headers(http::header_list& hs, const rate_headers& r) {
    if (r.limit_requests != 0) {
      hs.emplace_back("x-ratelimit-limit-requests", std::to_string(r.limit_requests));
      hs.emplace_back("x-ratelimit-remaining-requests", std::to_string(r.remaining_requests));
      hs.emplace_back("x-ratelimit-reset-requests", reset_text(r.reset_requests_ms));
    }
    if (r.limit_tokens != 0) {
      hs.emplace_back("x-ratelimit-limit-tokens", std::to_string(r.limit_tokens));
      hs.emplace_back("x-ratelimit-remaining-tokens", std::to_string(r.remaining_tokens));
      hs.emplace_back("x-ratelimit-reset-tokens", reset_text(r.reset_tokens_ms));
    }
  }

  http::header_list base_headers(const std::string& request_id) {
    return {{"x-request-id", request_id}};
  }

  void send_error(http::responder& res, const std::string& request_id, const openai::api_error& e,
                  const rate_headers& rate = {}) {
    auto headers = base_headers(request_id);
    add_rate_headers(headers, rate);
    headers.emplace_back("content-type", "application/json");
    if (e.retry_after_s > 0) headers.emplace_back("retry-after", std::to_string(e.retry_after_s));
    res.send(e.status, headers, openai::error_body(e));
  }

  void send_json(http::responder& res, const std::string& request_id, int status,
                 std::string body) {
    auto headers = base_headers(request_id);
    headers.emplace_back("content-type", "application/json");
    res.send(status, headers, std::move(body));
  }

  void on_request(http::request&& req, http::responder res) {
    arm_spin();
    std::string_view given_id = req.header("x-request-id");
    std::string request_id = valid_request_id(given_id) ? std::string(given_id) : next_request_id();
    const std::string& path = req.path;
    const bool get = req.method == "GET" || req.method == "HEAD";
    const bool post = req.method == "POST";

    auto api = [&](openai::endpoint kind) {
      if (!post) return send_error(res, request_id, openai::method_not_allowed(req.method, path));
      request_meta meta;
      meta.api_key = std::string(bearer_token(req.header("authorization")));
      std::optional<openai::api_error> bad = read_meta(req, meta);
      auto parsed = openai::parse_request(kind, std::move(req.body));
      if (auto* e = std::get_if<openai::api_error>(&parsed)) bad = std::move(*e);
      if (bad) {
        cache.finished(cache.route("other", ""), bad->status,
                       seconds(ns_since(req.received_ns, uv_hrtime())));
        return send_error(res, request_id, *bad);
      }
      meta.request_id = request_id;
      // The ledger's idempotency key is always ours: a client reusing its own x-request-id
      // for two requests must not have the second one's usage dropped as a duplicate.
      meta.record_id = request_id == given_id ? next_request_id() : request_id;
      start_request(std::get<openai::request>(std::move(parsed)), std::move(meta),
                    req.header("traceparent"), req.received_ns, res);
    };

    if (path == "/v1/chat/completions") return api(openai::endpoint::chat_completions);
    if (path == "/v1/completions") return api(openai::endpoint::completions);
    if (path == "/v1/embeddings") return api(openai::endpoint::embeddings);
    if (path == "/v1/models") {
      if (!get) return send_error(res, request_id, openai::method_not_allowed(req.method, path));
      if (auto refused = check_models_auth(req)) return send_error(res, request_id, *refused);
      return send_json(res, request_id, 200, ctx.models_body);
    }
    if (path.rfind("/v1/models/", 0) == 0) {
      if (!get) return send_error(res, request_id, openai::method_not_allowed(req.method, path));
      if (auto refused = check_models_auth(req)) return send_error(res, request_id, *refused);
      auto it = ctx.model_bodies.find(path.substr(11));
      if (it == ctx.model_bodies.end())
        return send_error(res, request_id, openai::model_not_found(path.substr(11)));
      return send_json(res, request_id, 200, it->second);
    }
    if (path == "/healthz") return send_json(res, request_id, 200, R"({"status":"ok"})");
    if (path == "/readyz") {
      if (draining) return send_json(res, request_id, 503, R"({"status":"draining"})");
      return send_json(res, request_id, 200, R"({"status":"ready"})");
    }
    send_error(res, request_id, openai::unknown_endpoint(req.method, path));
  }

  /// Step 1 for /v1/models, answered by the loop itself: reads the published account tables
  /// (no actor is asked).
  std::optional<openai::api_error> check_models_auth(const http::request& req) {
    const actors::account_plan& plan = ctx.pipeline->accounts;
    std::string_view bearer = bearer_token(req.header("authorization"));
    const accounts::api_key* key = nullptr;
    std::string tenant;
    openai::api_error error;
    const int64_t now_s = std::chrono::duration_cast<std::chrono::seconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
    if (actors::authenticate(plan, *plan.directory->get(), bearer, "models", {}, now_s, key, tenant,
                             error))
      return std::nullopt;
    return error;
  }

  /// The token of an "Authorization: Bearer <token>" header (empty if none).
  static std::string_view bearer_token(std::string_view h) {
    constexpr std::string_view scheme = "bearer ";
    if (h.size() <= scheme.size()) return {};
    for (size_t i = 0; i < scheme.size(); ++i)
      if ((h[i] | 0x20) != scheme[i]) return {};
    h.remove_prefix(scheme.size());
    while (!h.empty() && h.front() == ' ') h.remove_prefix(1);
    while (!h.empty() && (h.back() == ' ' || h.back() == '\t')) h.remove_suffix(1);
    return h;
  }

  /// The client's controls: Cache-Control no-cache / no-store, x-tc-cache-ttl, x-tc-priority.
  static std::optional<openai::api_error> read_meta(const http::request& req, request_meta& meta) {
    std::string_view cc = req.header("cache-control");
    while (!cc.empty()) {
      auto comma = cc.find(',');
      std::string_view d = cc.substr(0, comma);
      cc = comma == std::string_view::npos ? std::string_view{} : cc.substr(comma + 1);
      while (!d.empty() && (d.front() == ' ' || d.front() == '\t')) d.remove_prefix(1);
      while (!d.empty() && (d.back() == ' ' || d.back() == '\t')) d.remove_suffix(1);
      auto is = [d](std::string_view want) {
        return d.size() == want.size() &&
               std::equal(d.begin(), d.end(), want.begin(),
                          [](char a, char b) { return (a | 0x20) == b; });
      };
      if (is("no-cache")) meta.no_cache = true;
      if (is("no-store")) meta.no_store = true;
    }
    std::string_view ttl = req.header("x-tc-cache-ttl");
    if (!ttl.empty()) {
      uint64_t v = 0;
      bool ok = ttl.size() <= 9;
      for (char c : ttl) {
        ok = ok && c >= '0' && c <= '9';
        v = v * 10 + static_cast<uint64_t>(c - '0');
      }
      if (!ok || v == 0 || v > 31'536'000) {
        return openai::invalid_request(
            "The header x-tc-cache-ttl must be a whole number of seconds from 1 to 31536000.",
            "x-tc-cache-ttl");
      }
      meta.cache_ttl_s = static_cast<uint32_t>(v);
    }
    std::string_view prio = req.header("x-tc-priority");
    if (!prio.empty()) {
      // "2" or "P2": lowers the request's priority; raises it only as far as its key allows.
      if (prio.size() == 2 && (prio[0] == 'P' || prio[0] == 'p')) prio.remove_prefix(1);
      if (prio.size() != 1 || prio[0] < '0' || prio[0] > '4') {
        return openai::invalid_request(
            "The header x-tc-priority must be a priority from 0 (highest) to 4, or P0 to P4.",
            "x-tc-priority");
      }
      meta.priority = static_cast<uint8_t>(prio[0] - '0');
    }
    return std::nullopt;
  }

  void start_request(openai::request&& req, request_meta&& meta, std::string_view traceparent,
                     uint64_t received_ns, http::responder res) {
    const uint64_t slot = ++next_slot;
    pending& p = requests[slot];
    p.client = res;
    p.request_id = meta.request_id;
    p.model = req.model;
    p.stream = req.stream;
    p.received_ns = received_ns != 0 ? received_ns : uv_hrtime();
    p.traceparent = make_traceparent(traceparent);
    in_flight_gauge->Increment();
    ctx.in_flight->fetch_add(1, std::memory_order_relaxed);
    p.client.on_close([this, slot] { on_client_gone(slot); });
    cached_reply hit;
    p.lane = actors::try_exact_lane(ctx.pipeline, req, meta, reply_target{index, slot}, hit);
    if (p.lane) {
      ctx.metrics->loop_hits->Increment();
      return serve_cached(std::move(hit));
    }
    p.actor = acquire_actor();
    to_start.emplace_back(p.actor, std::move(req), reply_target{index, slot}, std::move(meta));
  }

  std::string make_traceparent(std::string_view incoming) {
    const bool keep_trace = valid_traceparent(incoming);
    std::string tp = "00-";
    if (keep_trace) {
      tp.append(incoming.substr(3, 32));  // keep the caller's trace, new span for our hop
    } else {
      append_hex(tp, next_id_bits(), 16);
      append_hex(tp, next_id_bits(), 16);
    }
    tp += '-';
    append_hex(tp, next_id_bits(), 16);
    tp += keep_trace ? incoming.substr(52) : std::string_view("-01");
    return tp;
  }

  /// splitmix64 over a per-loop random seed: unique ids, unpredictable enough for
  /// correlation (request ids, trace and span ids). Not for secrets.
  uint64_t next_id_bits() {
    uint64_t z = (id_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

  // -- upstream call and relay (DESIGN §2 steps 10-12) -------------------------------------

  void start_upstream(upstream_plan&& plan) {
    auto it = requests.find(plan.to.slot);
    if (it == requests.end()) return;  // cannot happen: slots live until their outcome
    pending& p = it->second;
    p.dispatched = true;
    p.provider = plan.provider;
    p.rate = plan.rate;
    p.capture = plan.capture;
    p.strip_usage = plan.strip_usage;
    p.dedup_leader = plan.dedup_leader;
    p.write_ahead = plan.write_ahead;
    p.acks = plan.acks;
    p.keep_output = plan.keep_output;
    p.moderate_output = plan.moderate_output;
    p.filing_id = std::move(plan.filing_id);
    p.queue_ms = std::max<int64_t>(0, plan.queue_ms);
    p.tenant = std::move(plan.tenant);
    if (plan.moderate_output && plan.stream) {
      auto rules = ctx.pipeline->compliance.moderation->get();
      const bool hold_all = rules->remote_output;  // remote engines see the whole text
      p.guard.emplace(std::move(rules), hold_all);
    }
    if (plan.capture && plan.stream) p.assembler.emplace();
    if (plan.cache_lookup_ns != 0) {
      cache.cache(p.model).misses->Increment();
      ctx.metrics->lookup_miss->Observe(seconds(plan.cache_lookup_ns));
    }
    if (plan.prefetched) return relay_prefetched(plan.to.slot, std::move(plan));
    if (p.client_gone) {
      if (plan.in_flight_taken) routing_board()->live[plan.endpoint].in_flight.fetch_sub(1);
      return finish(plan.to.slot, 499);
    }
    p.in_flight_taken = plan.in_flight_taken;
    p.endpoint = plan.endpoint;
    p.endpoint_index = plan.endpoint_index;
    p.url = std::move(plan.url);
    p.upstream_model = std::move(plan.upstream_model);
    p.timeouts[0] = plan.connect_timeout_ms;
    p.timeouts[1] = plan.first_byte_timeout_ms;
    p.timeouts[2] = plan.total_timeout_ms;
    p.fallbacks = std::move(plan.fallbacks);
    if (!p.fallbacks.empty()) p.request_body = plan.body;
    start_attempt(plan.to.slot, std::move(plan.body));
  }

  /// Step 8 made the call (prompt_array, several requests in one upstream call): `plan.body` is
  /// this request's part of the answer, relayed as a complete upstream answer is (step 11, the
  /// cache capture, write-ahead). Its usage is its share of the call's; a client that left is
  /// still billed that share (the tokens were generated for it).
  void relay_prefetched(uint64_t slot, upstream_plan&& plan) {
    pending& p = requests.at(slot);
    p.endpoint = plan.endpoint;
    p.endpoint_index = plan.endpoint_index;
    p.attempts = 1;
    p.merged = plan.merged;
    p.upstream_status = 200;
    p.upstream_content_type = "application/json";
    p.upstream_ns = plan.prefetched_ns;
    p.series = &cache.route(p.model, p.provider);
    p.body = std::move(plan.body);
    p.usage = openai::find_usage(p.body);
    if (p.client_gone) return finish(slot, 499);
    if (p.moderate_output) return moderate_answer(slot);
    send_answer(slot);
  }

  /// Calls the endpoint `p` is set to (p.provider, p.url, p.timeouts) with `body`.
  void start_attempt(uint64_t slot, std::string body) {
    arm_spin();
    pending& p = requests.at(slot);
    ++p.attempts;
    // The router counted the first attempt in its endpoint's load already.
    const bool counted = p.attempts == 1 && p.in_flight_taken;
    auto tr = transports.find(p.provider);
    if (tr == transports.end()) {
      if (counted) routing_board()->live[p.endpoint].in_flight.fetch_sub(1);
      return finish_with_error(
          slot, openai::upstream_error("no transport for provider '" + p.provider + "'"));
    }
    p.transport = tr->second;
    upstream::call_request call;
    call.url = p.url;
    auto wire = anthropic_wires.find(p.provider);
    p.anthropic = wire != anthropic_wires.end();
    p.translator.reset();
    if (p.anthropic) {
      // The Messages API: the chat body translated for this endpoint (its own model name).
      auto translated =
          anthropic::to_messages_request(body, p.upstream_model, wire->second.options);
      if (auto* error = std::get_if<openai::api_error>(&translated)) {
        if (counted) routing_board()->live[p.endpoint].in_flight.fetch_sub(1);
        return finish_with_error(slot, std::move(*error));
      }
      auto& req = std::get<anthropic::messages_request>(translated);
      body = std::move(req.body);
      // Usage is always asked for (billing); strip_usage drops it if the client did not ask.
      if (req.stream) p.translator.emplace(p.model, static_cast<int64_t>(std::time(nullptr)), true);
    }
    call.body = std::move(body);
    call.connect_timeout_ms = p.timeouts[0];
    call.first_byte_timeout_ms = p.timeouts[1];
    call.total_timeout_ms = p.timeouts[2];
    // libcurl writes every request header through its printf engine, byte by byte (callgrind:
    // a quarter of the node's instructions per request), so only headers the upstream needs:
    // no Accept (the body's "stream" decides the answer's form).
    call.headers.reserve(4);
    call.headers.emplace_back("Content-Type: application/json");
    call.headers.emplace_back("x-request-id: " + p.request_id);
    call.headers.emplace_back("traceparent: " + p.traceparent);
    if (auto auth = ctx.provider_auth.find(p.provider); auth != ctx.provider_auth.end())
      call.headers.emplace_back(auth->second);
    if (p.anthropic) call.headers.emplace_back(wire->second.version_header);

    upstream::call_handlers h;
    h.on_headers = [this, slot](int status, std::vector<std::pair<std::string, std::string>>&& hs) {
      on_upstream_headers(slot, status, hs);
    };
    h.on_data = [this, slot](std::string_view data) { on_upstream_data(slot, data); };
    h.on_complete = [this, slot](upstream::call_result&& r) { on_upstream_complete(slot, r); };
    p.upstream_start_ns = uv_hrtime();
    p.calling = true;
    p.series = &cache.route(p.model, p.provider);
    p.series->upstream_in_flight->Increment();
    if (auto* board = routing_board(); board != nullptr && !counted)
      board->live[p.endpoint].in_flight.fetch_add(1);
    p.call = p.transport->start(std::move(call), std::move(h));
  }

  actors::routing_board* routing_board() const { return ctx.pipeline->routing.board.get(); }

  /// How the attempt of `p` ended, to its endpoint's provider_health (not for cancellations).
  void report_health(const pending& p, int status, std::string_view failure, uint64_t latency_ns,
                     uint64_t ttft_ns) {
    auto* board = routing_board();
    if (board == nullptr || p.endpoint >= board->health.size()) return;
    health_report r;
    r.kind = static_cast<uint8_t>(actors::outcome_of(status, failure));
    const auto kind = static_cast<routing::outcome_kind>(r.kind);
    if (kind == routing::outcome_kind::ok || kind == routing::outcome_kind::timeout) {
      r.latency_ms = static_cast<double>(latency_ns) / 1e6;
      if (ttft_ns != 0) r.ttft_ms = static_cast<double>(ttft_ns) / 1e6;
    }
    if (kind == routing::outcome_kind::rate_limited)
      r.retry_after_ms = retry_after_ms(p.retry_after);
    // In the iteration's burst, after the outcome: one wake-up of the scheduler for both, and
    // one message per endpoint for all of the iteration's reports (a message per report was a
    // sixth of the CAF worker's messages per request).
    const caf::actor& to = board->health[p.endpoint];
    auto batch = std::find_if(to_health.begin(), to_health.end(),
                              [&to](const auto& b) { return b.first == to; });
    if (batch == to_health.end()) batch = to_health.insert(to_health.end(), {to, {}});
    batch->second.reports.push_back(r);
  }

  /// An upstream status that refuses the gateway's own key (api_key_env), not the client.
  static bool refused_key(int status) { return status == 401 || status == 403; }

  /// Retry-After as delay-seconds ("1.5" is read as 1); an HTTP date or nonsense: 0 (unknown).
  static uint32_t retry_after_ms(std::string_view v) {
    uint64_t s = 0;
    size_t i = 0;
    for (; i < v.size() && i < 7 && v[i] >= '0' && v[i] <= '9'; ++i) s = s * 10 + (v[i] - '0');
    return i == 0 ? 0 : static_cast<uint32_t>(std::min<uint64_t>(s * 1000, 3'600'000));
  }

  /// The attempt failed before the client got a byte and another endpoint is left: try it.
  /// A connect error, a timeout before the answer began, 5xx, 429, 401 or 403 (the gateway's
  /// key refused) move on; so does a non-stream answer that broke before it was complete (the
  /// client has nothing yet).
  bool fail_over(uint64_t slot, pending& p, const upstream::call_result& r) {
    if (p.started || p.client_gone || p.next_fallback >= p.fallbacks.size()) return false;
    const bool moves =
        r.why == upstream::failure::connect || r.why == upstream::failure::connect_timeout ||
        r.why == upstream::failure::first_byte_timeout || r.why == upstream::failure::io ||
        (r.why == upstream::failure::none &&
         (p.upstream_status >= 500 || p.upstream_status == 429 || refused_key(p.upstream_status)));
    if (!moves) return false;
    const upstream_attempt& a = p.fallbacks[p.next_fallback++];
    ctx.metrics->failovers_total.Add({{"from", p.provider}, {"to", a.provider}}).Increment();
    log::info("upstream_failover", {{"request_id", p.request_id},
                                    {"from", p.provider},
                                    {"to", a.provider},
                                    {"reason", r.why == upstream::failure::none
                                                   ? std::to_string(p.upstream_status)
                                                   : std::string(upstream::to_string(r.why))}});
    p.provider = a.provider;
    p.endpoint = a.endpoint;
    p.endpoint_index = a.index;
    p.url = a.url;
    p.upstream_model = a.upstream_model;
    p.timeouts[0] = a.connect_timeout_ms;
    p.timeouts[1] = a.first_byte_timeout_ms;
    p.timeouts[2] = a.total_timeout_ms;
    p.upstream_status = 0;
    p.upstream_content_type.clear();
    p.retry_after.clear();
    p.body.clear();
    p.usage.reset();
    p.upstream_failure.clear();
    start_attempt(slot, openai::with_model(p.request_body, a.upstream_model));
    return true;
  }

  /// The upstream call of `p` has ended (completed or cancelled).
  void call_ended(pending& p) {
    p.calling = false;
    p.series->upstream_in_flight->Decrement();
    if (auto* board = routing_board()) board->live[p.endpoint].in_flight.fetch_sub(1);
  }

  /// Abandons the upstream call of `p`: no callback of it runs any more.
  void cancel_call(pending& p) {
    p.transport->cancel(p.call);
    call_ended(p);
  }

  void on_upstream_headers(uint64_t slot, int status,
                           const std::vector<std::pair<std::string, std::string>>& headers) {
    arm_spin();
    auto it = requests.find(slot);
    if (it == requests.end()) return;
    pending& p = it->second;
    p.upstream_status = status;
    for (const auto& [name, value] : headers) {
      if (name == "content-type")
        p.upstream_content_type = value;
      else if (name == "retry-after")
        p.retry_after = value;
    }
    const bool event_stream = p.upstream_content_type.rfind("text/event-stream", 0) == 0;
    if (p.stream && status == 200 && event_stream) {
      auto hs = response_headers(p);
      hs.emplace_back("content-type", "text/event-stream");
      hs.emplace_back("cache-control", "no-cache");
      p.client.start(200, hs);
      p.started = true;
    }
  }

  http::header_list response_headers(const pending& p) {
    http::header_list hs = base_headers(p.request_id);
    add_rate_headers(hs, p.rate);
    hs.emplace_back("x-tc-provider", p.provider);
    hs.emplace_back("x-tc-cache", "miss");
    hs.emplace_back("x-tc-queue-ms", std::to_string(p.queue_ms));
    if (p.merged != 0) hs.emplace_back("x-tc-batch", std::to_string(p.merged));
    if (!p.filing_id.empty()) hs.emplace_back("x-algorithm-filing-id", p.filing_id);
    return hs;
  }

  void on_upstream_data(uint64_t slot, std::string_view data) {
    arm_spin();
    auto it = requests.find(slot);
    if (it == requests.end()) return;
    pending& p = it->second;
    if (!p.started) {
      if (p.body.size() + data.size() > max_upstream_body) {
        cancel_call(p);
        return finish_with_error(slot, openai::upstream_error("upstream response too large"));
      }
      p.body.append(data);
      return;
    }
    // A stream: relay whole events, re-framed, so a cut never leaves half an event behind.
    // With output moderation the events wait in the guard until the text after them is
    // scanned; what the guard releases is relayed exactly as an unmoderated event.
    std::string out;
    std::vector<std::string> shared;  // this read's events, for dedup followers
    bool complete = false;
    auto on_event = [&](std::string_view name, std::string_view payload) {
      if (p.saw_done) return;  // nothing after [DONE]
      const bool done = payload == "[DONE]";
      if (done) {
        p.saw_done = true;
        complete = true;
      } else {
        if (auto u = openai::find_usage(payload)) p.usage = u;
        if (name.empty() && !openai::is_usage_chunk(payload)) ++p.chunks;
      }
      if (p.guard) return p.guard->push(std::string(name), std::string(payload));
      relay_event(p, name, std::string(payload), out, shared);
    };
    bool failed = false;  // an Anthropic stream reported an error
    std::vector<std::string> translated;
    bool ok = p.splitter.feed(data, [&](const openai::sse_splitter::event& ev) {
      if (!p.translator) return on_event(ev.name, ev.data);
      // The Messages API's events, as the chat.completion.chunk events they mean.
      translated.clear();
      const auto st = p.translator->feed(ev.name, ev.data, translated);
      for (const std::string& chunk : translated) on_event({}, chunk);
      if (st == anthropic::stream_translator::status::done) on_event({}, "[DONE]");
      if (st == anthropic::stream_translator::status::failed) failed = true;
    });
    bool blocked = false;
    if (p.guard) {
      // Held whole for remote engines: the last scan comes with their verdict (finish_stream).
      blocked = !p.guard->scan(complete && !p.guard->hold_all());
      std::string name, payload;
      while (!blocked && p.guard->pop(name, payload))
        relay_event(p, name, std::move(payload), out, shared);
    }
    if (!out.empty() && !p.client_gone) {
      if (p.keep_output) p.output_text += out;
      p.client.write(std::move(out));
    }
    if (!shared.empty()) {
      for (const auto& [follower, key] : p.followers)
        caf::anon_send(follower, dedup_events{key, shared, false, false, {}});
    }
    if (blocked) {
      cancel_call(p);
      return end_filtered_stream(slot);
    }
    if (!ok) {
      cancel_call(p);
      return end_cut_stream(slot, "upstream sent an oversized event", "io");
    }
    if (failed) {
      cancel_call(p);
      return end_cut_stream(slot, p.translator->error().message, "upstream_error");
    }
    if (!p.client_gone && p.client.congested()) {
      p.transport->pause(p.call);
      p.client.on_drain([this, slot] {
        auto it = requests.find(slot);
        if (it != requests.end() && it->second.calling)
          it->second.transport->resume(it->second.call);
      });
    }
  }

  /// One stream event on its way to the client (after moderation): captured for the cache and
  /// for dedup followers, stamped with the filing ID if it is the first chunk, framed into
  /// `out`, or into the held tail from the usage chunk or [DONE] on (write-ahead).
  void relay_event(pending& p, std::string_view name, std::string data, std::string& out,
                   std::vector<std::string>& shared) {
    const bool done = data == "[DONE]";
    const bool usage_chunk = !done && name.empty() && openai::is_usage_chunk(data);
    if (p.write_ahead && (done || usage_chunk)) p.held = held_kind::tail;
    std::string& to = p.held == held_kind::tail ? p.held_bytes : out;
    if (done) {
      to += openai::sse_done;
      return;
    }
    if (!p.filing_id.empty() && !p.filing_stamped && name.empty() && !data.empty() &&
        data.front() == '{') {
      p.filing_stamped = true;
      data = openai::with_top_field(data, "algorithm_filing_id", p.filing_id);
    }
    if (p.assembler && name.empty() && !p.assembler->feed(data)) p.assembler.reset();
    if (p.dedup_leader && name.empty()) {
      if (p.event_log_bytes + data.size() <= max_captured_answer) {
        p.event_log.emplace_back(data);
        p.event_log_bytes += data.size();
      }
      if (!p.followers.empty()) shared.emplace_back(data);
    }
    if (p.strip_usage && usage_chunk) return;
    if (!name.empty()) {
      to += "event: ";
      to += name;
      to += '\n';
    }
    if (p.guard && name.empty() && !usage_chunk) p.last_chunk = data;  // to end it as filtered
    to += openai::sse_data(data);
  }

  /// Step 11 blocked a started stream: what was withheld is dropped; the client gets a chunk
  /// with finish_reason content_filter and an error event, no [DONE].
  void end_filtered_stream(uint64_t slot) {
    pending& p = requests.at(slot);
    p.filtered = true;
    p.output_verdicts = p.guard->verdicts();
    const std::string category = p.guard->category();
    const auto choices = static_cast<uint32_t>(std::max<size_t>(1, p.guard->choices()));
    p.guard.reset();
    auto err = openai::content_filtered(category);
    err.message = "The answer was stopped by content moderation" +
                  (category.empty() ? std::string() : " (category: " + category + ")") + ".";
    p.error_body = openai::error_body(err);
    end_followers(p, true, p.error_body);
    p.held = held_kind::none;
    p.held_bytes.clear();
    std::string out = openai::sse_data(openai::content_filter_chunk(p.last_chunk, choices));
    out += openai::sse_error(p.error_body);
    if (!p.client_gone) {
      if (p.keep_output) p.output_text += out;
      p.client.write(std::move(out));
      p.client.end();
    }
    ctx.metrics->moderation_blocks_total.Add({{"direction", "output"}}).Increment();
    finish(slot, 200);
  }

  /// Calls every remote output engine over `texts` at once; `done(result)` runs on the loop
  /// when the last has answered (or failed).
  void remote_output_check(const std::shared_ptr<const actors::moderation_rules>& rules,
                           const pending& p, std::vector<std::string> texts,
                           std::function<void(actors::moderation_result&)> done) {
    struct check {
      actors::moderation_result result;
      std::vector<std::string> texts;
      size_t waiting = 0;
      uint64_t started_ns = 0;
      std::function<void(actors::moderation_result&)> done;
    };
    auto c = std::make_shared<check>();
    c->texts = std::move(texts);
    c->result.masks.resize(c->texts.size());
    c->started_ns = uv_hrtime();
    c->done = std::move(done);
    for (const auto& e : rules->engines) c->waiting += e.remote() && e.output ? 1 : 0;
    for (const auto& e : rules->engines) {
      if (!e.remote() || !e.output) continue;
      side_call(
          e.url, actors::remote_headers(e),
          actors::remote_body(e, actors::moderation_dir::output, p.request_id, p.tenant, p.model,
                              c->texts),
          e.timeout_ms, [c, &e, rules](int status, std::string&& body, std::string_view failure) {
            actors::add_remote_verdict(
                e, status, body, failure, c->texts,
                static_cast<uint32_t>(ns_since(c->started_ns, uv_hrtime()) / 1000), c->result);
            if (--c->waiting == 0) c->done(c->result);
          });
    }
  }

  /// Step 11 for a complete non-stream answer: its text through the output engines (the local
  /// ones now, the remote ones concurrently), then send_answer. Blocked: the text is emptied and
  /// finish_reason becomes content_filter; mask findings are masked.
  void moderate_answer(uint64_t slot) {
    pending& p = requests.at(slot);
    auto rules = ctx.pipeline->compliance.moderation->get();
    if (!rules->output) return send_answer(slot);
    auto texts = std::make_shared<std::vector<std::string>>(openai::answer_texts(p.body));
    auto r = std::make_shared<actors::moderation_result>();
    actors::moderate_local(*rules, actors::moderation_dir::output, *texts, *r);
    auto decide = [this, slot, rules, texts, r] {
      auto it = requests.find(slot);
      if (it == requests.end()) return;
      pending& p = it->second;
      actors::finish_moderation(*rules, *r);
      p.output_verdicts = std::move(r->verdicts);
      if (r->blocked()) {
        p.filtered = true;
        p.body = openai::with_answer_texts(p.body, std::vector<std::string>(texts->size()),
                                           "content_filter");
        ctx.metrics->moderation_blocks_total.Add({{"direction", "output"}}).Increment();
      } else {
        bool masked = false;
        for (const auto& m : r->masks) masked = masked || !m.empty();
        if (masked)
          p.body = openai::with_answer_texts(p.body, actors::masked_texts(*texts, *r), "");
      }
      send_answer(slot);
    };
    if (!rules->remote_output || texts->empty()) return decide();  // e.g. embeddings
    remote_output_check(rules, p, *texts, [r, decide](actors::moderation_result& remote) {
      r->verdicts.insert(r->verdicts.end(), remote.verdicts.begin(), remote.verdicts.end());
      r->votes.insert(r->votes.end(), remote.votes.begin(), remote.votes.end());
      for (size_t i = 0; i < remote.masks.size() && i < r->masks.size(); ++i)
        r->masks[i].insert(r->masks[i].end(), remote.masks[i].begin(), remote.masks[i].end());
      decide();
    });
  }

  void on_upstream_complete(uint64_t slot, const upstream::call_result& r) {
    arm_spin();
    auto it = requests.find(slot);
    if (it == requests.end()) return;
    pending& p = it->second;
    call_ended(p);
    const uint64_t upstream_ns = ns_since(p.upstream_start_ns, r.done_ns ? r.done_ns : uv_hrtime());
    const uint64_t ttft_ns = r.first_byte_ns ? ns_since(p.upstream_start_ns, r.first_byte_ns) : 0;
    p.series->upstream_latency->Observe(seconds(upstream_ns));
    if (ttft_ns) p.series->upstream_ttft->Observe(seconds(ttft_ns));
    p.upstream_ns = upstream_ns;
    p.ttft_ns = ttft_ns;

    if (r.why != upstream::failure::cancelled) {
      report_health(
          p, r.why == upstream::failure::none ? p.upstream_status : 0,
          r.why == upstream::failure::none ? std::string_view{} : upstream::to_string(r.why),
          upstream_ns, ttft_ns);
    }
    if (r.why != upstream::failure::none) {
      p.upstream_failure = upstream::to_string(r.why);
      ctx.metrics->upstream_failures_total
          .Add({{"provider", p.provider}, {"reason", std::string(upstream::to_string(r.why))}})
          .Increment();
      log::warn("upstream_failure", {{"request_id", p.request_id},
                                     {"provider", p.provider},
                                     {"reason", upstream::to_string(r.why)},
                                     {"detail", r.detail}});
    }
    if (fail_over(slot, p, r)) return;
    if (p.started) {
      if (r.why == upstream::failure::none && p.saw_done) return finish_stream(slot);
      return end_cut_stream(
          slot, "upstream stream ended before completion",
          r.why == upstream::failure::none ? "incomplete" : upstream::to_string(r.why));
    }
    switch (r.why) {
      case upstream::failure::none:
        break;
      case upstream::failure::connect_timeout:
      case upstream::failure::first_byte_timeout:
      case upstream::failure::total_timeout:
        return finish_with_error(
            slot, openai::upstream_timeout("upstream '" + p.provider + "' timed out (" +
                                           std::string(upstream::to_string(r.why)) + ")"));
      default:
        return finish_with_error(
            slot, openai::upstream_error("upstream '" + p.provider + "' failed (" +
                                         std::string(upstream::to_string(r.why)) + ")"));
    }
    if (p.upstream_status >= 500) {
      return finish_with_error(slot,
                               openai::upstream_error("upstream '" + p.provider + "' answered " +
                                                      std::to_string(p.upstream_status)));
    }
    if (refused_key(p.upstream_status)) {
      // The provider refused the gateway's credentials: the client's key is not at fault, and
      // the provider's message (about a key the client never sent) is not passed on.
      log::warn("upstream_refused_key", {{"request_id", p.request_id},
                                         {"provider", p.provider},
                                         {"status", std::to_string(p.upstream_status)}});
      return finish_with_error(slot,
                               openai::upstream_error("upstream '" + p.provider +
                                                      "' refused the gateway's credentials (" +
                                                      std::to_string(p.upstream_status) + ")"));
    }
    if (p.anthropic) {
      // The Messages API's answer or error, as the chat.completion or error envelope it means.
      if (p.upstream_status != 200) {
        return finish_with_error(slot,
                                 anthropic::to_openai_error(p.upstream_status, p.body,
                                                            retry_after_ms(p.retry_after) / 1000));
      }
      auto answer =
          anthropic::to_chat_completion(p.body, p.model, static_cast<int64_t>(std::time(nullptr)));
      if (auto* error = std::get_if<openai::api_error>(&answer)) {
        return finish_with_error(slot, std::move(*error));
      }
      p.body = std::move(std::get<std::string>(answer));
      p.upstream_content_type = "application/json";
    }
    // 2xx, and other 4xx from an OpenAI-compatible upstream (its own error envelope): relay as
    // is.
    p.usage = openai::find_usage(p.body);
    if (p.upstream_status == 200 && p.moderate_output) return moderate_answer(slot);
    send_answer(slot);
  }

  /// The complete non-stream answer of `slot` (moderated if it had to be) goes to the client,
  /// or is held for its records (write-ahead).
  void send_answer(uint64_t slot) {
    auto it = requests.find(slot);
    if (it == requests.end()) return;
    pending& p = it->second;
    if (p.capture && p.upstream_status == 200 && p.body.size() <= max_captured_answer) {
      p.answer = p.body;
      p.answer_cacheable = openai::answer_cacheable(p.body);
    }
    if (p.upstream_status != 200) p.error_body = p.body;
    auto hs = response_headers(p);
    hs.emplace_back("content-type",
                    p.upstream_content_type.empty() ? "application/json" : p.upstream_content_type);
    if (!p.retry_after.empty()) hs.emplace_back("retry-after", p.retry_after);
    const int status = p.upstream_status;
    if (status == 200 && !p.filing_id.empty())
      p.body = openai::with_top_field(p.body, "algorithm_filing_id", p.filing_id);
    if (p.keep_output) p.output_text = p.body;
    p.sent_bytes = p.body.size();
    if (p.write_ahead && status == 200 && !p.client_gone) {
      p.held = held_kind::body;
      p.held_status = status;
      p.held_headers = std::move(hs);
      p.held_bytes = std::move(p.body);
    } else {
      p.client.send(status, hs, std::move(p.body));
    }
    finish(slot, status);
  }

  /// Step 6 hit: the stored answer, as JSON or as a synthesized stream.
  void serve_cached(cached_reply&& r) {
    auto it = requests.find(r.to.slot);
    if (it == requests.end()) return;
    pending& p = it->second;
    p.dispatched = true;  // the actor (or the lane's step 13) awaits an outcome
    p.provider = r.tier == "dedup" ? "dedup" : "cache";
    auto& cs = cache.cache(r.model);
    if (r.tier == "dedup") {
      cs.dedup_joins->Increment();
    } else {
      const int tier = r.tier == "exact" ? 0 : r.tier == "template" ? 1 : 2;
      cs.hits[tier]->Increment();
      ctx.metrics->lookup_hit->Observe(seconds(r.cache_lookup_ns));
    }
    if (r.status == 200) {
      cs.saved_prompt_tokens->Increment(r.prompt_tokens);
      cs.saved_completion_tokens->Increment(r.completion_tokens);
      cs.saved_cost->Increment(static_cast<double>(r.saved_cost_micros) / 1e6);
    }
    p.usage = openai::usage{r.prompt_tokens, r.completion_tokens,
                            r.prompt_tokens + r.completion_tokens, 0};
    if (p.client_gone) return finish(r.to.slot, 499);
    p.rate = r.rate;
    p.acks = r.acks;
    p.keep_output = r.keep_output;
    http::header_list hs = base_headers(p.request_id);
    add_rate_headers(hs, p.rate);
    hs.emplace_back("x-tc-cache", r.cache_header);
    hs.emplace_back("x-tc-queue-ms", std::to_string(p.queue_ms));
    if (!r.filing_id.empty()) hs.emplace_back("x-algorithm-filing-id", r.filing_id);
    if (r.status != 200) {  // the dedup leader's error, as it got it
      hs.emplace_back("content-type", "application/json");
      if (p.keep_output) p.output_text = r.body;
      p.client.send(r.status, hs, std::move(r.body));
      return finish(r.to.slot, r.status);
    }
    if (r.stream) {
      std::string events = openai::synthesize_stream(r.body, r.include_usage);
      if (!events.empty()) {
        if (!r.filing_id.empty() && events.rfind("data: {", 0) == 0) {  // the first chunk
          events = "data: " + openai::with_top_field(std::string_view(events).substr(6),
                                                     "algorithm_filing_id", r.filing_id);
        }
        if (p.keep_output) p.output_text = events;
        hs.emplace_back("content-type", "text/event-stream");
        hs.emplace_back("cache-control", "no-cache");
        p.started = true;
        if (r.write_ahead) {
          p.held = held_kind::stream;
          p.held_status = 200;
          p.held_headers = std::move(hs);
          p.held_bytes = std::move(events);
        } else {
          p.client.start(200, hs);
          p.client.write(std::move(events));
          p.client.end();
        }
        return finish(r.to.slot, 200);
      }
      // Not a chat or text completion (cannot happen for a stored stream): answer as JSON.
    }
    hs.emplace_back("content-type", "application/json");
    if (!r.filing_id.empty())
      r.body = openai::with_top_field(r.body, "algorithm_filing_id", r.filing_id);
    if (p.keep_output) {
      if (!r.body_digest.empty() && r.filing_id.empty()) {  // the bytes stored, and digested
        p.output_digest = std::move(r.body_digest);
        p.output_digest_algo = r.body_digest_algo;
      } else {
        p.output_text = r.body;
      }
    }
    if (r.write_ahead) {
      p.held = held_kind::body;
      p.held_status = 200;
      p.held_headers = std::move(hs);
      p.held_bytes = std::move(r.body);
    } else {
      p.client.send(200, hs, std::move(r.body));
    }
    finish(r.to.slot, 200);
  }

  /// Step 7, leader: a streaming follower joined; it gets the events so far, then live ones.
  void attach_follower(const attach_cmd& a) {
    auto it = requests.find(a.leader.slot);
    if (it == requests.end()) return;  // ended: the follower gets the result from the table
    pending& p = it->second;
    if (p.started && !p.event_log.empty())
      caf::anon_send(a.follower, dedup_events{a.key, p.event_log, false, false, {}});
    p.followers.emplace_back(a.follower, a.key);
  }

  /// The end of a dedup leader's stream, to its attached followers.
  void end_followers(pending& p, bool cut, const std::string& error) {
    for (const auto& [follower, key] : p.followers)
      caf::anon_send(follower, dedup_events{key, {}, true, cut, error});
    p.followers.clear();
  }

  /// Step 7, follower: the leader's live events, relayed as this client's stream.
  void follow_leader(follow_chunk&& c) {
    auto it = requests.find(c.to.slot);
    if (it == requests.end()) return;
    pending& p = it->second;
    if (!p.dispatched) {
      p.dispatched = true;
      p.provider = "dedup";
      cache.cache(p.model).dedup_joins->Increment();
    }
    if (!p.started && !p.client_gone) {
      http::header_list hs = base_headers(p.request_id);
      hs.emplace_back("x-tc-cache", "dedup");
      hs.emplace_back("x-tc-queue-ms", std::to_string(p.queue_ms));
      hs.emplace_back("content-type", "text/event-stream");
      hs.emplace_back("cache-control", "no-cache");
      p.client.start(200, hs);
      p.started = true;
    }
    std::string out;
    for (const auto& ev : c.events) {
      if (!c.include_usage && openai::is_usage_chunk(ev)) continue;
      if (auto u = openai::find_usage(ev)) p.usage = u;
      out += openai::sse_data(ev);
    }
    if (c.end) {
      if (c.cut) {
        out += openai::sse_error(c.error);
        p.stream_cut = true;
      } else {
        out += openai::sse_done;
      }
    }
    if (!p.client_gone && !out.empty()) p.client.write(std::move(out));
    if (!c.end) return;
    if (!p.client_gone) p.client.end();
    finish(c.to.slot, p.client_gone ? 499 : 200);
  }

  void finish_stream(uint64_t slot) {
    pending& p = requests.at(slot);
    if (p.guard && p.guard->queued() != 0) {
      // Remote output engines: the whole text was withheld; they check it now, then it goes.
      auto rules = ctx.pipeline->compliance.moderation->get();
      if (!rules->remote_output) rules = nullptr;
      auto release_rest = [this, slot] {
        auto it = requests.find(slot);
        if (it == requests.end()) return;
        pending& p = it->second;
        std::string out, name, payload;
        std::vector<std::string> shared;
        if (!p.guard->scan(true)) return end_filtered_stream(slot);
        while (p.guard->pop(name, payload)) relay_event(p, name, std::move(payload), out, shared);
        if (!out.empty() && !p.client_gone) {
          if (p.keep_output) p.output_text += out;
          p.client.write(std::move(out));
        }
        for (const auto& [follower, key] : p.followers)
          caf::anon_send(follower, dedup_events{key, shared, false, false, {}});
        p.output_verdicts = p.guard->verdicts();
        p.guard.reset();
        finish_stream(slot);
      };
      if (!rules) return release_rest();
      return remote_output_check(rules, p, p.guard->texts(),
                                 [this, slot, rules, release_rest](actors::moderation_result& r) {
                                   auto it = requests.find(slot);
                                   if (it == requests.end()) return;
                                   actors::finish_moderation(*rules, r);
                                   it->second.guard->add_remote(r);
                                   release_rest();
                                 });
    }
    if (p.guard) {
      p.output_verdicts = p.guard->verdicts();
      p.guard.reset();
    }
    if (p.assembler && p.assembler->complete() && !p.assembler->failed()) {
      p.answer = p.assembler->result();
      p.answer_cacheable = !p.assembler->filtered_or_truncated();
    }
    p.assembler.reset();
    end_followers(p, false, {});
    if (!p.client_gone && p.held == held_kind::none) p.client.end();
    finish(slot, 200);
  }

  /// A started stream that cannot complete: an SSE error event, no [DONE], then the end.
  void end_cut_stream(uint64_t slot, const std::string& message, std::string_view why) {
    pending& p = requests.at(slot);
    auto err = openai::upstream_error(message + " (" + std::string(why) + ")");
    p.error_body = openai::error_body(err);
    end_followers(p, true, p.error_body);
    if (p.held == held_kind::tail) {  // the usage came, [DONE] did not: no answer to hold
      p.held = held_kind::none;
      if (!p.client_gone) {
        if (p.keep_output) p.output_text += p.held_bytes;
        p.client.write(std::move(p.held_bytes));
      }
    }
    if (!p.client_gone) {
      std::string error = openai::sse_error(p.error_body);
      if (p.keep_output) p.output_text += error;  // the audit record shows the cut too
      p.client.write(std::move(error));
      p.client.end();
    }
    ctx.metrics->streams_cut_total.Add({{"provider", p.provider}}).Increment();
    p.stream_cut = true;
    finish(slot, 200);
  }

  void finish_with_error(uint64_t slot, const openai::api_error& e) {
    auto it = requests.find(slot);
    if (it == requests.end()) return;
    pending& p = it->second;
    if (p.started) return end_cut_stream(slot, e.message, e.code);
    p.error_body = openai::error_body(e);
    if (!p.client_gone) send_error(p.client, p.request_id, e, p.rate);
    finish(slot, e.status);
  }

  void on_client_gone(uint64_t slot) {
    auto it = requests.find(slot);
    if (it == requests.end()) return;
    pending& p = it->second;
    p.client_gone = true;
    ctx.metrics->client_disconnects_total.Add({}).Increment();
    if (p.calling && p.dedup_leader) {
      // Followers may wait on this call, and its answer fills the cache: it runs on.
      if (p.transport != nullptr) p.transport->resume(p.call);  // no client to drain to
      return;
    }
    if (p.calling) {
      cancel_call(p);  // the upstream stops generating for nobody
      p.upstream_ns = ns_since(p.upstream_start_ns, uv_hrtime());
      return finish(slot, 499);  // erases p
    }
    // Otherwise the actor has not dispatched yet: its dispatch or reject ends the request.
    // Tell it, so a request waiting in its model's queue leaves it now.
    if (!p.dispatched && p.actor)
      caf::anon_send(p.actor, actors::client_gone_atom::value, reply_target{index, slot});
  }

  // -- side calls (remote moderation engines) ----------------------------------------------

  /// Sends `body` to `url` (`method`, POST by default) with the loop's HTTP client, or with
  /// `provider`'s transport when it names one (the in-process sim); `done(status, body,
  /// failure)` runs on the loop exactly once (status 0 and a failure name when the call failed).
  void side_call(std::string url, std::vector<std::string> headers, std::string body,
                 uint32_t timeout_ms,
                 std::function<void(int, std::string&&, std::string_view)> done,
                 std::string method = "POST", const std::string& provider = {},
                 size_t max_answer = max_side_answer) {
    upstream::transport* via = curl.get();
    if (!provider.empty()) {
      auto tr = transports.find(provider);
      if (tr == transports.end()) return done(0, std::string(), "no_transport");
      via = tr->second;
      if (auto auth = ctx.provider_auth.find(provider); auth != ctx.provider_auth.end())
        headers.push_back(auth->second);
      if (auto wire = anthropic_wires.find(provider); wire != anthropic_wires.end())
        headers.push_back(wire->second.version_header);
    }
    upstream::call_request call;
    call.method = std::move(method);
    call.url = std::move(url);
    call.headers = std::move(headers);
    call.body = std::move(body);
    call.connect_timeout_ms = std::min<uint32_t>(timeout_ms, 2000);
    call.first_byte_timeout_ms = timeout_ms;
    call.total_timeout_ms = timeout_ms;
    struct state {
      int status = 0;
      std::string body;
      size_t max = 0;
      bool too_large = false;
      std::function<void(int, std::string&&, std::string_view)> done;
    };
    auto st = std::make_shared<state>();
    st->done = std::move(done);
    st->max = max_answer;
    upstream::call_handlers h;
    h.on_headers = [st](int status, std::vector<std::pair<std::string, std::string>>&&) {
      st->status = status;
    };
    h.on_data = [st](std::string_view data) {
      if (st->body.size() + data.size() <= st->max)
        st->body.append(data);
      else
        st->too_large = true;
    };
    h.on_complete = [st](upstream::call_result&& r) {
      if (r.why != upstream::failure::none)
        st->done(0, std::string(), upstream::to_string(r.why));
      else if (st->too_large)
        st->done(0, std::string(), "too_large");
      else
        st->done(st->status, std::move(st->body), {});
    };
    via->start(std::move(call), std::move(h));
  }

  void side_call_for_actor(actors::side_call&& c) {
    side_call(
        std::move(c.url), std::move(c.headers), std::move(c.body), c.timeout_ms,
        [to = std::move(c.reply_to), id = c.id](int status, std::string&& body,
                                                std::string_view failure) {
          caf::anon_send(to, side_answer{id, status, std::move(body), std::string(failure)});
        },
        std::move(c.method), c.provider, c.max_answer_bytes);
  }

  /// The request ended: metrics, the outcome to the actor, and the slot is freed.
  void finish(uint64_t slot, int status) {
    auto it = requests.find(slot);
    if (it == requests.end()) return;
    pending& p = it->second;
    request_outcome outcome;
    outcome.status = status;
    outcome.client_gone = p.client_gone;
    outcome.stream_cut = p.stream_cut;
    outcome.upstream_failure = std::move(p.upstream_failure);
    outcome.upstream_ns = p.upstream_ns;
    outcome.ttft_ns = p.ttft_ns;
    const uint64_t now = uv_hrtime();
    outcome.total_ns = ns_since(p.received_ns, now);
    if (p.usage) {
      outcome.usage = *p.usage;
      outcome.usage_reported = true;
      if (p.attempts != 0 && p.series != nullptr) {  // an upstream's own report
        p.series->prompt_tokens->Increment(p.usage->prompt_tokens);
        p.series->cached_tokens->Increment(p.usage->cached_tokens);
        p.series->completion_tokens->Increment(p.usage->completion_tokens);
      }
    }
    // Without reported usage: a stream's content events (about one token each), or a body's
    // bytes at ~4 a token.
    outcome.completion_estimate =
        p.started ? p.chunks : static_cast<uint32_t>(std::min<size_t>(p.sent_bytes / 4, 1u << 30));
    if (!p.answer.empty() && !p.stream_cut) {
      outcome.answer = std::move(p.answer);
      outcome.answer_cacheable = p.answer_cacheable;
    }
    outcome.error_body = std::move(p.error_body);
    outcome.endpoint_index = p.endpoint_index;
    outcome.attempts = p.attempts;
    outcome.output_verdicts = std::move(p.output_verdicts);
    outcome.filtered = p.filtered;
    if (p.keep_output) {
      outcome.output_text = std::move(p.output_text);
      if (p.held == held_kind::tail) outcome.output_text += p.held_bytes;
      outcome.output_digest = std::move(p.output_digest);
      outcome.output_digest_algo = p.output_digest_algo;
    }
    // Held only for a client still there, with a connection actor to write the record.
    if (p.client_gone || !p.dispatched) p.held = held_kind::none;
    outcome.held = p.held != held_kind::none;
    p.final_status = status;
    p.final_upstream_ns = outcome.upstream_ns;
    if (p.lane) {
      actors::settle_exact_lane(*p.lane, outcome, to_record);
      p.lane.reset();
    } else if (p.dispatched) {
      to_settle.emplace_back(std::move(p.actor), std::move(outcome));
    } else {
      release_actor(std::move(p.actor));  // it rejected the request: nothing to settle
    }
    if (p.held == held_kind::none) close(it, now);
    // Otherwise the slot waits for release(): the answer's last bytes follow its record.
  }

  /// Step 13, write-ahead: the record of a held answer is durable; send what was held.
  void release(uint64_t slot) {
    auto it = requests.find(slot);
    if (it == requests.end() || it->second.held == held_kind::none) return;
    pending& p = it->second;
    if (p.acks > 1) {  // another record is not durable yet
      --p.acks;
      return;
    }
    if (!p.client_gone) {
      switch (p.held) {
        case held_kind::body:
          p.client.send(p.held_status, p.held_headers, std::move(p.held_bytes));
          break;
        case held_kind::stream:
          p.client.start(p.held_status, p.held_headers);
          p.client.write(std::move(p.held_bytes));
          p.client.end();
          break;
        case held_kind::tail:
          p.client.write(std::move(p.held_bytes));
          p.client.end();
          break;
        case held_kind::none:
          break;
      }
    }
    p.held = held_kind::none;
    close(it);
  }

  /// The request is over: its metrics and access log line, and the slot is freed. `now_ns` is
  /// uv_hrtime() if the caller just read it (0: read here).
  void close(std::unordered_map<uint64_t, pending>::iterator it, uint64_t now_ns = 0) {
    pending& p = it->second;
    const int status = p.final_status;
    const uint64_t total_ns = ns_since(p.received_ns, now_ns != 0 ? now_ns : uv_hrtime());
    if (p.series == nullptr) {
      // Not routed: label by the model only if the configuration declares it, so a client
      // cannot grow the label set with made-up model names.
      const actors::pipeline& pl = *ctx.pipeline;
      const bool known = pl.models.count(p.model) != 0 || pl.aliases.count(p.model) != 0 ||
                         pl.groups.count(p.model) != 0 ||
                         (!pl.auto_model.name.empty() && pl.auto_model.name == p.model);
      p.series = &cache.route(known ? std::string_view(p.model) : "other", p.provider);
    }
    cache.finished(*p.series, status, seconds(total_ns));
    if (p.final_upstream_ns != 0)
      p.series->overhead->Observe(seconds(ns_since(p.final_upstream_ns, total_ns)));
    if (ctx.settings->log.access_log) {
      log::info("request", {{"request_id", p.request_id},
                            {"model", p.model},
                            {"provider", p.provider},
                            {"status", status},
                            {"total_us", total_ns / 1000},
                            {"upstream_us", p.final_upstream_ns / 1000}});
    }
    in_flight_gauge->Decrement();
    ctx.in_flight->fetch_sub(1, std::memory_order_relaxed);
    requests.erase(it);
    maybe_drained();
  }

  // -- shutdown ----------------------------------------------------------------------------

  void begin_shutdown(uint32_t grace_ms, std::function<void()> done) {
    draining = true;
    on_drained = std::move(done);
    server->shutdown(grace_ms, [this] {
      server_done = true;
      maybe_drained();
    });
  }

  void maybe_drained() {
    if (!server_done || !on_drained) return;
    // Every connection is closed: answers still held for their record have nobody to go to
    // (the ledger still writes the records).
    for (auto it = requests.begin(); it != requests.end(); ++it) {
      if (it->second.held == held_kind::none) continue;
      it->second.held = held_kind::none;
      return close(it);  // erases it, then comes back here
    }
    if (!requests.empty()) return;
    // Every connection is closed and every request has reported its outcome: close the
    // loop's own handles so uv_run returns.
    auto done = std::move(on_drained);
    on_drained = nullptr;
    close_handles();
    done();
  }

  /// Every 250 ms: the HTTP server's own counters, copied into the metric families.
  void update_gauges() {
    const auto& st = server->stats();
    connections_gauge->Set(static_cast<double>(st.connections_open));
    protocol_errors->Increment(static_cast<double>(st.protocol_errors - protocol_errors_seen));
    protocol_errors_seen = st.protocol_errors;
    connections_refused->Increment(
        static_cast<double>(st.connections_refused - connections_refused_seen));
    connections_refused_seen = st.connections_refused;
    for (size_t i = 0; i < sims.size(); ++i) {
      const sim::sim_stats ss = sims[i]->stats();
      sim_gauges[i].first->Set(ss.utilisation_recent);
      sim_gauges[i].second->Set(ss.active_sequences);
    }
  }

  uint32_t index;

  /// Runs first on the loop's own thread: names it `tc.io.<index>` (for top -H, perf and the
  /// io_nice test) and applies server.io_nice to it alone. A nice the process may not take
  /// (below 0 without CAP_SYS_NICE or RLIMIT_NICE) is logged and the loop keeps the nice it had.
  void set_up_thread() const {
    const std::string name = "tc.io." + std::to_string(index);
    (void)pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
    const int nice = ctx.settings->server.io_nice;
    if (nice == 0) return;
    // On Linux, PRIO_PROCESS with a thread id sets that one thread's nice.
    if (setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), nice) != 0) {
      const int err = errno;
      log::warn("io_nice_not_permitted",
                {{"loop", index}, {"io_nice", nice}, {"error", std::strerror(err)}});
    }
  }
  const loop_context& ctx;
  uv_loop_t loop{};
  uv_async_t wake{};
  uv_timer_t gauge_timer{};
  uv_prepare_t flush_handle{};
  uv_idle_t spin_handle{};  ///< active while the loop polls instead of sleeping (arm_spin)
  uint64_t spin_ns = 0;     ///< server.poll_spin_us
  uint64_t spin_until = 0;
  bool spinning = false;
  bool worked = false;  ///< work since the spin's last idle pass (arm_spin)
  /// Work for the actor world, handed over in one burst before the loop polls (flush()).
  std::vector<std::tuple<caf::actor, openai::request, reply_target, request_meta>> to_start;
  std::vector<std::pair<caf::actor, request_outcome>> to_settle;
  /// Step 13's records of exact-lane hits: sent in the burst, after the outcomes and starts.
  std::vector<std::pair<caf::actor, caf::message>> to_record;
  /// Health reports by endpoint actor (a handful at most): sent in the burst, after the records.
  std::vector<std::pair<caf::actor, health_reports>> to_health;
  std::vector<caf::actor> idle_actors;  ///< connection actors with no request
  std::unique_ptr<http::server> server;
  std::unique_ptr<upstream::curl_client> curl;
  std::vector<std::unique_ptr<sim::provider>> sims;
  /// Per in-process sim: the utilisation it reports (last 10 s) and its active sequences.
  std::vector<std::pair<prometheus::Gauge*, prometheus::Gauge*>> sim_gauges;
  std::unordered_map<std::string, upstream::transport*> transports;
  /// Providers of type anthropic: how their requests are written.
  struct anthropic_wire {
    std::string version_header;  ///< "anthropic-version: ..."
    anthropic::request_options options;
  };
  std::unordered_map<std::string, anthropic_wire> anthropic_wires;
  mpsc_queue<command> queue;
  std::unordered_map<uint64_t, pending> requests;
  uint64_t next_slot = 0;
  uint64_t id_state = 0;
  metrics_cache cache;
  prometheus::Gauge* in_flight_gauge = nullptr;
  prometheus::Gauge* connections_gauge = nullptr;
  prometheus::Counter* protocol_errors = nullptr;
  uint64_t protocol_errors_seen = 0;
  prometheus::Counter* connections_refused = nullptr;
  uint64_t connections_refused_seen = 0;
  bool draining = false;
  bool server_done = false;
  bool handles_closed = false;
  std::function<void()> on_drained;
  std::thread thread;
};

io_loop::io_loop(uint32_t index, const loop_context& ctx)
    : impl_(std::make_unique<impl>(index, ctx)) {}

io_loop::~io_loop() {
  join();
}

int io_loop::listen(const std::string& host, uint16_t port, bool reuse_port) {
  return impl_->server->listen(host, port, reuse_port);
}

void io_loop::start() {
  auto* d = impl_.get();
  uv_timer_start(
      &d->gauge_timer, [](uv_timer_t* t) { static_cast<impl*>(t->data)->update_gauges(); }, 250,
      250);
  d->thread = std::thread([d] {
    d->set_up_thread();
    uv_run(&d->loop, UV_RUN_DEFAULT);
  });
}

void io_loop::shutdown(uint32_t grace_ms, std::function<void()> done) {
  auto* d = impl_.get();
  d->post(control_cmd{[d, grace_ms, done = std::move(done)]() mutable {
    d->begin_shutdown(grace_ms, std::move(done));
  }});
}

void io_loop::join() {
  if (impl_ && impl_->thread.joinable()) impl_->thread.join();
}

void io_loop::dispatch(upstream_plan&& plan) {
  impl_->post(dispatch_cmd{std::move(plan)});
}

void io_loop::reject(reply_target to, openai::api_error&& error, const rate_headers& rate) {
  impl_->post(reject_cmd{to, std::move(error), rate});
}

void io_loop::serve(cached_reply&& reply) {
  impl_->post(serve_cmd{std::move(reply)});
}

void io_loop::attach(reply_target leader, caf::actor follower, canonical::digest key) {
  impl_->post(attach_cmd{leader, std::move(follower), key});
}

void io_loop::follow(follow_chunk&& chunk) {
  impl_->post(follow_cmd{std::move(chunk)});
}

void io_loop::release(reply_target to) {
  impl_->post(release_cmd{to});
}

void io_loop::call(actors::side_call&& c) {
  impl_->post(side_cmd{std::move(c)});
}

}  // namespace tc::node
