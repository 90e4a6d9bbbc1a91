// The one declaration of every setting. Each row: the name as a TOML path, its type, its default
// exactly as settings.hpp has it (tests/config checks they agree), bounds or choices, one line of
// help, and the field it fills. docs/config.md is generated from these rows.
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>
#include <type_traits>
#include <utility>

#include "config/fields.hpp"
#include "config/loader.hpp"

namespace tc::config::detail {
namespace {

constexpr double unbounded = std::numeric_limits<double>::infinity();

// --- string forms --------------------------------------------------------------------------

bool is_port(std::string_view s) {
  if (s.empty() || s.size() > 5) return false;
  uint32_t port = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    port = port * 10 + static_cast<uint32_t>(c - '0');
  }
  return port <= 65535;
}

bool is_host_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}

std::string check_host_port(std::string_view s) {
  const std::string expected = "expected HOST:PORT with PORT 0..65535 (e.g. \"127.0.0.1:8080\")";
  auto colon = s.rfind(':');
  if (colon == std::string_view::npos) return expected + ", got \"" + std::string(s) + "\"";
  std::string_view host = s.substr(0, colon);
  std::string_view port = s.substr(colon + 1);
  bool host_ok = false;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {  // [IPv6]
    host_ok = host.substr(1, host.size() - 2).find_first_not_of("0123456789abcdefABCDEF:.") ==
              std::string_view::npos;
  } else {
    host_ok = !host.empty();
    for (char c : host) host_ok = host_ok && is_host_char(c);
  }
  if (!host_ok || !is_port(port)) return expected + ", got \"" + std::string(s) + "\"";
  return "";
}

std::string check_node_id(std::string_view s) {
  bool ok = !s.empty() && s.size() <= 64;
  for (char c : s) ok = ok && is_host_char(c);
  if (ok) return "";
  return "expected 1..64 characters of [A-Za-z0-9._-], got \"" + std::string(s) + "\"";
}

std::string check_provider_name(std::string_view s) {
  bool ok = !s.empty();
  for (char c : s)
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-');
  if (ok) return "";
  return "expected a name of [a-z0-9_-]+, got \"" + std::string(s) + "\"";
}

std::string check_url(std::string_view s) {
  for (std::string_view scheme : {"http://", "https://"}) {
    if (s.size() > scheme.size() && s.substr(0, scheme.size()) == scheme) return "";
  }
  return "expected a URL starting with http:// or https://, got \"" + std::string(s) + "\"";
}

std::string check_optional_url(std::string_view s) {
  return s.empty() ? std::string() : check_url(s);
}

std::string check_env_name(std::string_view s) {
  if (s.substr(0, 3) == "sk-") {
    return "this looks like an API key: keys never go in the file; put the key in an environment "
           "variable and set api_key_env to that variable's NAME (e.g. \"DEEPSEEK_API_KEY\")";
  }
  if (s.empty()) return "";  // no key (a local endpoint)
  bool ok = (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_';
  for (char c : s) ok = ok && ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_');
  if (ok) return "";
  return "expected an environment variable name matching [A-Z_][A-Z0-9_]*, got \"" +
         std::string(s) + "\"";
}

std::string check_token(std::string_view s) {  // model ids, tags, versions: no blanks
  bool ok = !s.empty();
  for (char c : s) ok = ok && static_cast<unsigned char>(c) > ' ' && c != 0x7f;
  if (ok) return "";
  return "expected a non-empty string without spaces or control characters, got \"" +
         std::string(s) + "\"";
}

std::string check_category_action(std::string_view s) {
  auto eq = s.find('=');
  if (eq != std::string_view::npos && eq > 0) {
    std::string_view a = s.substr(eq + 1);
    if (a == "block" || a == "mask" || a == "flag" || a == "allow") return "";
  }
  return "expected \"category=action\" with action block, mask, flag or allow, got \"" +
         std::string(s) + "\"";
}

std::string check_alias(std::string_view s) {
  const auto eq = s.find('=');
  bool ok = eq != std::string_view::npos && eq > 0 && eq + 1 < s.size();
  for (char c : s) ok = ok && static_cast<unsigned char>(c) > ' ' && c != 0x7f;
  if (ok) return "";
  return "expected \"alias=model\" without spaces, got \"" + std::string(s) + "\"";
}

std::string check_group(std::string_view s) {
  const auto eq = s.find('=');
  bool ok = eq != std::string_view::npos && eq > 0 && eq + 1 < s.size();
  for (char c : s) ok = ok && static_cast<unsigned char>(c) > ' ' && c != 0x7f;
  if (ok && !parse_group(s.substr(eq + 1)).empty()) return "";
  return "expected \"group=model:weight,model:weight\" (weights 0-1000000) without spaces, got \"" +
         std::string(s) + "\"";
}

std::string check_header_text(std::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) return "expected no control characters (it is sent in a header)";
  }
  return "";
}

std::string check_pii_kind(std::string_view s) {
  if (s == "id_card" || s == "phone" || s == "bank_card" || s == "email") return "";
  return "expected one of: id_card, phone, bank_card, email; got \"" + std::string(s) + "\"";
}

// --- storing and showing field values ------------------------------------------------------

std::string show(bool v) {
  return v ? "true" : "false";
}
std::string show(uint32_t v) {
  return std::to_string(v);
}
std::string show(uint64_t v) {
  return std::to_string(v);
}
std::string show(int32_t v) {
  return std::to_string(v);
}
std::string show(double v) {
  std::string s = format_number(v);
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";  // a float stays a float
  return s;
}
std::string show(const std::string& v) {
  std::string out = "\"";
  for (char c : v) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}
std::string show(const std::vector<std::string>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + show(v[i]);
  return out + "]";
}

std::string assign(bool& f, const value& v) {
  f = std::get<bool>(v);
  return "";
}
std::string assign(uint32_t& f, const value& v) {
  int64_t i = std::get<int64_t>(v);
  if (i < 0 || i > int64_t{std::numeric_limits<uint32_t>::max()}) {
    return "expected 0..4294967295, got " + std::to_string(i);
  }
  f = static_cast<uint32_t>(i);
  return "";
}
std::string assign(int32_t& f, const value& v) {
  int64_t i = std::get<int64_t>(v);
  if (i < int64_t{std::numeric_limits<int32_t>::min()} ||
      i > int64_t{std::numeric_limits<int32_t>::max()}) {
    return "expected -2147483648..2147483647, got " + std::to_string(i);
  }
  f = static_cast<int32_t>(i);
  return "";
}
std::string assign(uint64_t& f, const value& v) {
  int64_t i = std::get<int64_t>(v);
  if (i < 0) return "expected a non-negative integer, got " + std::to_string(i);
  f = static_cast<uint64_t>(i);
  return "";
}
std::string assign(double& f, const value& v) {
  f = std::holds_alternative<int64_t>(v) ? static_cast<double>(std::get<int64_t>(v))
                                         : std::get<double>(v);
  return "";
}
std::string assign(std::string& f, const value& v) {
  f = std::get<std::string>(v);
  return "";
}
std::string assign(std::vector<std::string>& f, const value& v) {
  f = std::get<std::vector<std::string>>(v);
  return "";
}

/// A row: `access` is a generic lambda returning the field of an Owner (const or not).
template <class Owner, class Access>
field<Owner> bind(setting_decl decl, Access access, string_check check = nullptr,
                  bool required = false) {
  field<Owner> f{std::move(decl), required, check, {}, {}};
  f.store = [access](Owner& o, const value& v) { return assign(access(o), v); };
  f.show = [access](const Owner& o) { return show(access(o)); };
  return f;
}

/// A row for an array of tables: the loader walks it; nothing to store directly.
template <class Owner>
field<Owner> nested(setting_decl decl) {
  return field<Owner>{std::move(decl), false, nullptr, {}, {}};
}

using vt = value_type;

field_set build() {
  field_set fs;
  using S = settings;
  fs.root = {
      bind<S>(
          {.name = "node_id",
           .type = vt::string,
           .default_text = R"("node-1")",
           .help = "This node's name in logs, metrics and audit records; unique in a "
                   "cluster (`[A-Za-z0-9._-]`, at most 64)"},
          [](auto& s) -> auto& { return s.node_id; }, check_node_id),

      bind<S>(
          {.name = "server.listen",
           .type = vt::string,
           .default_text = R"("127.0.0.1:8080")",
           .help = "HOST:PORT of the data port (the OpenAI-compatible API); port 0 picks a "
                   "free one"},
          [](auto& s) -> auto& { return s.server.listen; }, check_host_port),
      bind<S>(
          {.name = "server.admin_listen",
           .type = vt::string,
           .default_text = R"("127.0.0.1:9090")",
           .help = "HOST:PORT of the admin port (admin API, /metrics); must differ from "
                   "listen"},
          [](auto& s) -> auto& { return s.server.admin_listen; }, check_host_port),
      bind<S>(
          {.name = "server.io_threads",
           .type = vt::integer,
           .default_text = "1",
           .min = 1,
           .max = 64,
           .help = "I/O loop threads accepting connections and parsing HTTP"},
          [](auto& s) -> auto& { return s.server.io_threads; }),
      bind<S>(
          {.name = "server.max_header_bytes",
           .type = vt::integer,
           .default_text = "16384",
           .min = 1024,
           .max = 1048576,
           .help = "Largest request line plus headers"},
          [](auto& s) -> auto& { return s.server.max_header_bytes; }),
      bind<S>(
          {.name = "server.max_body_bytes",
           .type = vt::integer,
           .default_text = "4194304",
           .min = 1024,
           .max = 268435456,
           .help = "Largest request body"},
          [](auto& s) -> auto& { return s.server.max_body_bytes; }),
      bind<S>(
          {.name = "server.header_timeout_ms",
           .type = vt::integer,
           .default_text = "10000",
           .min = 100,
           .max = 3600000,
           .help = "Time allowed to receive the request headers (slow-loris guard)"},
          [](auto& s) -> auto& { return s.server.header_timeout_ms; }),
      bind<S>(
          {.name = "server.body_timeout_ms",
           .type = vt::integer,
           .default_text = "30000",
           .min = 100,
           .max = 3600000,
           .help = "Time allowed to receive the request body"},
          [](auto& s) -> auto& { return s.server.body_timeout_ms; }),
      bind<S>(
          {.name = "server.idle_timeout_ms",
           .type = vt::integer,
           .default_text = "60000",
           .min = 100,
           .max = 3600000,
           .help = "A keep-alive connection with no request for this long is closed"},
          [](auto& s) -> auto& { return s.server.idle_timeout_ms; }),
      bind<S>(
          {.name = "server.max_pipelined",
           .type = vt::integer,
           .default_text = "64",
           .min = 1,
           .max = 1024,
           .help = "Requests read ahead on one connection before reading pauses"},
          [](auto& s) -> auto& { return s.server.max_pipelined; }),
      bind<S>(
          {.name = "server.write_high_watermark",
           .type = vt::integer,
           .default_text = "262144",
           .min = 4096,
           .max = 67108864,
           .help = "Bytes queued for one slow client before the node pauses work for it"},
          [](auto& s) -> auto& { return s.server.write_high_watermark; }),
      bind<S>(
          {.name = "server.shutdown_grace_ms",
           .type = vt::integer,
           .default_text = "10000",
           .min = 0,
           .max = 600000,
           .help = "On SIGTERM, time given to in-flight requests before connections close"},
          [](auto& s) -> auto& { return s.server.shutdown_grace_ms; }),
      bind<S>(
          {.name = "server.max_connections",
           .type = vt::integer,
           .default_text = "50000",
           .min = 1,
           .max = 1000000,
           .help = "Client connections open at once, shared evenly by the I/O loops; a "
                   "connection beyond it is closed at accept"},
          [](auto& s) -> auto& { return s.server.max_connections; }),
      bind<S>(
          {.name = "server.poll_spin_us",
           .type = vt::integer,
           .default_text = "100",
           .min = 0,
           .max = 10000,
           .help = "At low load, an I/O loop polls this long after its last work (a request, an "
                   "upstream's or an actor's answer, work handed on) instead of sleeping, so the "
                   "next event costs no wake-up (measured on VMs: tens of microseconds a hop); "
                   "0 = always sleep"},
          [](auto& s) -> auto& { return s.server.poll_spin_us; }),
      bind<S>(
          {.name = "server.poll_spin_max_in_flight",
           .type = vt::integer,
           .default_text = "2",
           .min = 1,
           .max = 1024,
           .help = "Low load for server.poll_spin_us: at most this many requests in flight in "
                   "the whole node (busier loops rarely sleep, and a spinning loop would take "
                   "the CPU the answer needs)"},
          [](auto& s) -> auto& { return s.server.poll_spin_max_in_flight; }),
      bind<S>(
          {.name = "server.io_nice",
           .type = vt::integer,
           .default_text = "0",
           .min = -20,
           .max = 19,
           .help = "Nice value of the I/O loop threads. Below 0 the loops get the CPU ahead of "
                   "other work on the host (a co-located upstream or load generator, batch "
                   "jobs) and are preempted less often when the cores are shared; it needs "
                   "CAP_SYS_NICE or an RLIMIT_NICE that allows it, and without either the loops "
                   "keep nice 0 and tcnode logs io_nice_not_permitted"},
          [](auto& s) -> auto& { return s.server.io_nice; }),

      bind<S>(
          {.name = "actors.scheduler_threads",
           .type = vt::integer,
           .default_text = "0",
           .min = 0,
           .max = 256,
           .help = "CAF scheduler worker threads; 0 = number of cores"},
          [](auto& s) -> auto& { return s.actors.scheduler_threads; }),
      bind<S>(
          {.name = "actors.aggressive_poll_attempts",
           .type = vt::integer,
           .default_text = "100",
           .min = 0,
           .max = 100000,
           .help = "CAF: polls of an empty queue spinning before backing off"},
          [](auto& s) -> auto& { return s.actors.aggressive_poll_attempts; }),
      bind<S>(
          {.name = "actors.moderate_poll_attempts",
           .type = vt::integer,
           .default_text = "0",
           .min = 0,
           .max = 100000,
           .help = "CAF: polls with short sleeps before a worker parks"},
          [](auto& s) -> auto& { return s.actors.moderate_poll_attempts; }),
      bind<S>(
          {.name = "actors.thread_policy",
           .type = vt::string,
           .default_text = R"("batch")",
           .help = "Linux scheduling policy of every thread the actor system starts (scheduler "
                   "workers, its clock, detached actors): batch (SCHED_BATCH) lets a woken actor "
                   "thread wait for the running I/O loop's time slice instead of preempting it; "
                   "normal: SCHED_OTHER",
           .choices = {"batch", "normal"}},
          [](auto& s) -> auto& { return s.actors.thread_policy; }),

      bind<S>(
          {.name = "cache.enabled",
           .type = vt::boolean,
           .default_text = "true",
           .help = "The response cache (exact, template and semantic tiers) and dedup"},
          [](auto& s) -> auto& { return s.cache.enabled; }),
      bind<S>(
          {.name = "cache.shards",
           .type = vt::integer,
           .default_text = "8",
           .min = 1,
           .max = 1024,
           .help = "cache_shard actors (and as many dedup_table actors) on this node"},
          [](auto& s) -> auto& { return s.cache.shards; }),
      bind<S>(
          {.name = "cache.max_entries",
           .type = vt::integer,
           .default_text = "1000000",
           .min = 1,
           .max = 1000000000,
           .help = "Entries held by this node, split evenly over the shards; beyond it the "
                   "coldest, cheapest entries are evicted"},
          [](auto& s) -> auto& { return s.cache.max_entries; }),
      bind<S>(
          {.name = "cache.max_bytes",
           .type = vt::integer,
           .default_text = "1073741824",
           .min = 4096,
           .max = 1099511627776.0,
           .help = "Bytes of answers and keys held by this node, split evenly over the shards "
                   "(semantic index vectors are counted apart, see /metrics)"},
          [](auto& s) -> auto& { return s.cache.max_bytes; }),
      bind<S>(
          {.name = "cache.template_tier",
           .type = vt::boolean,
           .default_text = "true",
           .help = "Template tier: the query with its numbers, dates, names … normalised"},
          [](auto& s) -> auto& { return s.cache.template_tier; }),
      bind<S>(
          {.name = "cache.semantic_tier",
           .type = vt::boolean,
           .default_text = "true",
           .help = "Semantic tier: nearest stored query by embedding, guarded by slots, "
                   "entities and negation"},
          [](auto& s) -> auto& { return s.cache.semantic_tier; }),
      bind<S>(
          {.name = "cache.semantic_multi_turn",
           .type = vt::boolean,
           .default_text = "false",
           .help = "Semantic and template hits for requests with history too (the history must "
                   "then match exactly)"},
          [](auto& s) -> auto& { return s.cache.semantic_multi_turn; }),
      bind<S>(
          {.name = "cache.embedder",
           .type = vt::string,
           .default_text = R"("builtin")",
           .help = "builtin: feature-hashed word and character n-grams, nothing downloaded; "
                   "openai: the /v1/embeddings of cache.embedder_provider, calls batched",
           .choices = {"builtin", "openai"}},
          [](auto& s) -> auto& { return s.cache.embedder; }),
      bind<S>(
          {.name = "cache.embedding_dim",
           .type = vt::integer,
           .default_text = "256",
           .min = 16,
           .max = 4096,
           .help = "Length of the semantic index's vectors: the builtin embedder's output; with "
                   "openai, the length the provider must return (another length is an error for "
                   "that request: no semantic lookup)"},
          [](auto& s) -> auto& { return s.cache.embedding_dim; }),
      bind<S>(
          {.name = "cache.embedder_provider",
           .type = vt::string,
           .default_text = R"("")",
           .help = "openai embedder: the [[providers]] name whose base_url, key and transport "
                   "are used (a sim provider too, not an anthropic one); required with embedder = "
                   "\"openai\""},
          [](auto& s) -> auto& { return s.cache.embedder_provider; }),
      bind<S>(
          {.name = "cache.embedder_model",
           .type = vt::string,
           .default_text = R"("")",
           .help = "openai embedder: the `model` sent (the provider's name for it); required "
                   "with embedder = \"openai\""},
          [](auto& s) -> auto& { return s.cache.embedder_model; }),
      bind<S>(
          {.name = "cache.embedder_send_dimensions",
           .type = vt::boolean,
           .default_text = "false",
           .help = "openai embedder: send cache.embedding_dim as `dimensions` (for models that "
                   "can shorten their vectors; others may reject the field)"},
          [](auto& s) -> auto& { return s.cache.embedder_send_dimensions; }),
      bind<S>(
          {.name = "cache.embedder_batch_max",
           .type = vt::integer,
           .default_text = "64",
           .min = 1,
           .max = 2048,
           .help = "openai embedder: distinct texts in one call at most"},
          [](auto& s) -> auto& { return s.cache.embedder_batch_max; }),
      bind<S>(
          {.name = "cache.embedder_batch_wait_ms",
           .type = vt::integer,
           .default_text = "2",
           .min = 0,
           .max = 1000,
           .help = "openai embedder: longest a text waits for others to share its call; 0 = "
                   "send what is there at once"},
          [](auto& s) -> auto& { return s.cache.embedder_batch_wait_ms; }),
      bind<S>(
          {.name = "cache.embedder_timeout_ms",
           .type = vt::integer,
           .default_text = "2000",
           .min = 10,
           .max = 60000,
           .help = "openai embedder: a call slower than this fails (its requests skip the "
                   "semantic lookup)"},
          [](auto& s) -> auto& { return s.cache.embedder_timeout_ms; }),
      bind<S>(
          {.name = "cache.embedder_max_calls",
           .type = vt::integer,
           .default_text = "8",
           .min = 1,
           .max = 1024,
           .help = "openai embedder: calls in flight at most; meanwhile texts gather into "
                   "bigger batches"},
          [](auto& s) -> auto& { return s.cache.embedder_max_calls; }),
      bind<S>(
          {.name = "cache.embedder_max_pending",
           .type = vt::integer,
           .default_text = "4096",
           .min = 1,
           .max = 1000000,
           .help = "openai embedder: texts waiting for an embedding at most; beyond, a request "
                   "skips the semantic lookup at once"},
          [](auto& s) -> auto& { return s.cache.embedder_max_pending; }),
      bind<S>(
          {.name = "cache.embedder_max_text_bytes",
           .type = vt::integer,
           .default_text = "16384",
           .min = 64,
           .max = 1048576,
           .help = "openai embedder: a longer query is not embedded (no semantic lookup), so one "
                   "text over the model's input limit cannot fail a whole batch"},
          [](auto& s) -> auto& { return s.cache.embedder_max_text_bytes; }),
      bind<S>(
          {.name = "cache.semantic_ef",
           .type = vt::integer,
           .default_text = "64",
           .min = 1,
           .max = 4096,
           .help = "HNSW search breadth: higher finds more true neighbours, slower"},
          [](auto& s) -> auto& { return s.cache.semantic_ef; }),
      bind<S>(
          {.name = "cache.semantic_m",
           .type = vt::integer,
           .default_text = "16",
           .min = 4,
           .max = 64,
           .help = "HNSW links per node: higher is more accurate and uses more memory"},
          [](auto& s) -> auto& { return s.cache.semantic_m; }),
      bind<S>(
          {.name = "cache.semantic_budget_pct",
           .type = vt::integer,
           .default_text = "25",
           .min = 0,
           .max = 100,
           .help = "Semantic search and insert are best effort: each cache shard spends at most "
                   "this % of one thread on them (bursts of up to a second's worth pass); past "
                   "it, inserts are left out first, then searches (tc_cache_semantic_skipped). "
                   "0 = no limit, and one namespace's HNSW graph can then cap the node"},
          [](auto& s) -> auto& { return s.cache.semantic_budget_pct; }),
      bind<S>(
          {.name = "cache.lookup_timeout_ms",
           .type = vt::integer,
           .default_text = "50",
           .min = 1,
           .max = 10000,
           .help = "A cache shard that has not answered by then counts as a miss"},
          [](auto& s) -> auto& { return s.cache.lookup_timeout_ms; }),
      bind<S>(
          {.name = "cache.loop_hits",
           .type = vt::boolean,
           .default_text = "true",
           .help = "The I/O loop answers an exact hit itself, without the connection actor, when "
                   "no step but auth, validation and the cache applies (no quota limits, no "
                   "input moderation, a model named as served); false: every request goes "
                   "through the actor"},
          [](auto& s) -> auto& { return s.cache.loop_hits; }),
      bind<S>(
          {.name = "cache.dedup",
           .type = vt::boolean,
           .default_text = "true",
           .help = "Coalesce identical in-flight requests (same full hash and scope) into one "
                   "upstream call"},
          [](auto& s) -> auto& { return s.cache.dedup; }),

      bind<S>(
          {.name = "auth.required",
           .type = vt::boolean,
           .default_text = "false",
           .help = "Every data-plane request needs an API key (sk-tc-…); without it, requests "
                   "with no key (or another scheme's placeholder key) are the anonymous tenant"},
          [](auto& s) -> auto& { return s.auth.required; }),
      bind<S>(
          {.name = "auth.anonymous_tenant",
           .type = vt::string,
           .default_text = R"("anonymous")",
           .help = "Tenant id of requests without a key; create a tenant with this id to give "
                   "them limits"},
          [](auto& s) -> auto& { return s.auth.anonymous_tenant; }, check_provider_name),
      bind<S>(
          {.name = "admin.token_env",
           .type = vt::string,
           .default_text = R"("TC_ADMIN_TOKEN")",
           .help = "Environment variable holding the first owner admin token; while it is unset "
                   "and no admin token exists, the admin API is open"},
          [](auto& s) -> auto& { return s.admin.token_env; }, check_env_name),
      bind<S>(
          {.name = "store.path",
           .type = vt::string,
           .default_text = R"("")",
           .help = "RocksDB directory for accounts, the usage ledger and the audit trail; \"\" "
                   "keeps them in memory (lost at exit; answers are then not held for their "
                   "records: billing.write_ahead, audit.write_ahead)"},
          [](auto& s) -> auto& { return s.store.path; }),
      bind<S>(
          {.name = "store.durability",
           .type = vt::string,
           .default_text = R"("process")",
           .help = "process: every write reaches the WAL (survives kill -9); fsync: and the disk "
                   "(survives power loss, slower)",
           .choices = {"process", "fsync"}},
          [](auto& s) -> auto& { return s.store.durability; }),
      bind<S>(
          {.name = "store.fail_mode",
           .type = vt::string,
           .default_text = R"("closed")",
           .help = "When usage cannot be written: closed refuses billed requests (503) and holds "
                   "answers until their record is durable; open serves under the strict "
                   "store.fallback_* limits and keeps records in memory until the store recovers",
           .choices = {"closed", "open"}},
          [](auto& s) -> auto& { return s.store.fail_mode; }),
      bind<S>(
          {.name = "store.fallback_rpm",
           .type = vt::integer,
           .default_text = "60",
           .min = 1,
           .max = 1000000,
           .help = "fail_mode open, store failing: requests a minute per tenant"},
          [](auto& s) -> auto& { return s.store.fallback_rpm; }),
      bind<S>(
          {.name = "store.fallback_concurrency",
           .type = vt::integer,
           .default_text = "4",
           .min = 1,
           .max = 100000,
           .help = "fail_mode open, store failing: requests in flight per tenant"},
          [](auto& s) -> auto& { return s.store.fallback_concurrency; }),
      bind<S>(
          {.name = "store.max_pending_records",
           .type = vt::integer,
           .default_text = "100000",
           .min = 1,
           .max = 100000000,
           .help = "fail_mode open: usage records kept in memory while the store fails; beyond "
                   "it billed requests are refused (503), never dropped"},
          [](auto& s) -> auto& { return s.store.max_pending_records; }),
      bind<S>(
          {.name = "store.max_records_behind",
           .type = vt::integer,
           .default_text = "1000",
           .min = 1,
           .max = 100000000,
           .help = "Records that no answer waits for (write-ahead off, the store in memory, "
                   "refusals) sent to the writers and not yet written; beyond it answers wait "
                   "for their records again (back-pressure, not an unbounded backlog)"},
          [](auto& s) -> auto& { return s.store.max_records_behind; }),
      bind<S>(
          {.name = "billing.cny_per_usd",
           .type = vt::floating,
           .default_text = "7.2",
           .min = 0.01,
           .max = 1000,
           .help = "Exchange rate used to charge a tenant in the other currency"},
          [](auto& s) -> auto& { return s.billing.cny_per_usd; }),
      bind<S>(
          {.name = "billing.cache_hit_charge",
           .type = vt::floating,
           .default_text = "0.0",
           .min = 0,
           .max = 1,
           .help = "Fraction of the list price charged for an answer served by the cache or dedup"},
          [](auto& s) -> auto& { return s.billing.cache_hit_charge; }),
      bind<S>(
          {.name = "billing.quota_shards",
           .type = vt::integer,
           .default_text = "4",
           .min = 1,
           .max = 1024,
           .help = "tenant_quota actors on this node (tenants are spread over them)"},
          [](auto& s) -> auto& { return s.billing.quota_shards; }),
      bind<S>(
          {.name = "billing.write_ahead",
           .type = vt::boolean,
           .default_text = "true",
           .help = "Hold each answer's last bytes until its usage record is durable, so a crash "
                   "never loses the record of an answer a client got (with a store on disk; "
                   "with store.path \"\" nothing survives a crash and answers are not held)"},
          [](auto& s) -> auto& { return s.billing.write_ahead; }),
      bind<S>(
          {.name = "billing.alert_webhook",
           .type = vt::string,
           .default_text = R"("")",
           .help = "URL that budget alerts (50, 80, 100%) are POSTed to as JSON; \"\" none. "
                   "Alerts are always logged and counted"},
          [](auto& s) -> auto& { return s.billing.alert_webhook; }, check_optional_url),
      bind<S>(
          {.name = "moderation.enabled",
           .type = vt::boolean,
           .default_text = "false",
           .help = "Moderate requests and answers with the engines of [[moderation.engines]]"},
          [](auto& s) -> auto& { return s.moderation.enabled; }),
      bind<S>(
          {.name = "moderation.input",
           .type = vt::boolean,
           .default_text = "true",
           .help = "Check requests before any cache lookup or upstream call (400 "
                   "content_filter when blocked)"},
          [](auto& s) -> auto& { return s.moderation.input; }),
      bind<S>(
          {.name = "moderation.output",
           .type = vt::boolean,
           .default_text = "true",
           .help = "Check answers before they are released; streams in windows, so blocked "
                   "text is never sent"},
          [](auto& s) -> auto& { return s.moderation.output; }),
      bind<S>(
          {.name = "moderation.policy",
           .type = vt::string,
           .default_text = R"("any_block")",
           .help = "How engine verdicts combine: any_block (the strongest wins), majority "
                   "(block when more than half block), weighted (block at block_threshold of "
                   "the weights)",
           .choices = {"any_block", "majority", "weighted"}},
          [](auto& s) -> auto& { return s.moderation.policy; }),
      bind<S>(
          {.name = "moderation.block_threshold",
           .type = vt::floating,
           .default_text = "0.5",
           .min = 0.01,
           .max = 1,
           .help = "Policy weighted: the share of the engines' weight that must say block"},
          [](auto& s) -> auto& { return s.moderation.block_threshold; }),
      bind<S>(
          {.name = "moderation.stream_hold_back_bytes",
           .type = vt::integer,
           .default_text = "64",
           .min = 0,
           .max = 65536,
           .help = "Stream text withheld until more follows (at least the longest lexicon "
                   "term); the latency price of never sending blocked text"},
          [](auto& s) -> auto& { return s.moderation.stream_hold_back_bytes; }),
      nested<S>({.name = "moderation.engines",
                 .type = vt::table_array,
                 .default_text = "",
                 .help = "Moderation engines, one `[[moderation.engines]]` table each, run in "
                         "parallel"}),
      bind<S>(
          {.name = "audit.enabled",
           .type = vt::boolean,
           .default_text = "true",
           .help = "Write one hash-chained audit record per request into the store"},
          [](auto& s) -> auto& { return s.audit.enabled; }),
      bind<S>(
          {.name = "audit.hash",
           .type = vt::string,
           .default_text = R"("sha256")",
           .help = "Hash of the chain and of the text digests (OpenSSL EVP)",
           .choices = {"sha256", "sm3"}},
          [](auto& s) -> auto& { return s.audit.hash; }),
      bind<S>(
          {.name = "audit.text",
           .type = vt::string,
           .default_text = R"("none")",
           .help = "Request and answer text kept in records: none (digests only), clear, or "
                   "sealed (SM4-CTR + HMAC-SM3 with the key of sm4_key_env)",
           .choices = {"none", "clear", "sealed"}},
          [](auto& s) -> auto& { return s.audit.text; }),
      bind<S>(
          {.name = "audit.sm4_key_env",
           .type = vt::string,
           .default_text = R"("")",
           .help = "Text sealed: NAME of the environment variable holding the SM4 key as 32 hex "
                   "digits"},
          [](auto& s) -> auto& { return s.audit.sm4_key_env; }, check_env_name),
      bind<S>(
          {.name = "audit.retention_days",
           .type = vt::integer,
           .default_text = "0",
           .min = 0,
           .max = 36500,
           .help = "Records older than this are pruned (the chain stays verifiable from an "
                   "anchor); 0 keeps them forever"},
          [](auto& s) -> auto& { return s.audit.retention_days; }),
      bind<S>(
          {.name = "audit.prune_interval_s",
           .type = vt::integer,
           .default_text = "3600",
           .min = 1,
           .max = 604800,
           .help = "How often retention runs"},
          [](auto& s) -> auto& { return s.audit.prune_interval_s; }),
      bind<S>(
          {.name = "audit.write_ahead",
           .type = vt::boolean,
           .default_text = "true",
           .help = "Hold each answer's last bytes until its audit record is durable, so a crash "
                   "never loses the record of an answer a client got (with a store on disk; "
                   "with store.path \"\" nothing survives a crash and answers are not held)"},
          [](auto& s) -> auto& { return s.audit.write_ahead; }),
      bind<S>(
          {.name = "routing.policy",
           .type = vt::string,
           .default_text = R"("performance_first")",
           .help = "How the endpoints serving a model are ranked: by price, by latency and load, "
                   "or only those in the tenant's regions and tags first",
           .choices = {"cost_first", "performance_first", "compliance_first"}},
          [](auto& s) -> auto& { return s.routing.policy; }),
      bind<S>(
          {.name = "routing.weight_latency",
           .type = vt::floating,
           .default_text = "0.3",
           .min = 0,
           .max = 1,
           .help = "Score weight of an endpoint's latency (EWMA); the policy shapes the weights"},
          [](auto& s) -> auto& { return s.routing.weight_latency; }),
      bind<S>(
          {.name = "routing.weight_price",
           .type = vt::floating,
           .default_text = "0.3",
           .min = 0,
           .max = 1,
           .help = "Score weight of an endpoint's price for the request's expected tokens"},
          [](auto& s) -> auto& { return s.routing.weight_price; }),
      bind<S>(
          {.name = "routing.weight_load",
           .type = vt::floating,
           .default_text = "0.2",
           .min = 0,
           .max = 1,
           .help = "Score weight of an endpoint's requests in flight against its max_concurrency"},
          [](auto& s) -> auto& { return s.routing.weight_load; }),
      bind<S>(
          {.name = "routing.weight_availability",
           .type = vt::floating,
           .default_text = "0.2",
           .min = 0,
           .max = 1,
           .help = "Score weight of an endpoint's health (success rate, breaker, Retry-After)"},
          [](auto& s) -> auto& { return s.routing.weight_availability; }),
      bind<S>(
          {.name = "routing.max_attempts",
           .type = vt::integer,
           .default_text = "3",
           .min = 1,
           .max = 16,
           .help = "Endpoints tried for one request: a connect error, timeout to the first byte, "
                   "5xx or 429 before the client got a byte moves it to the next; 1 = no failover"},
          [](auto& s) -> auto& { return s.routing.max_attempts; }),
      bind<S>(
          {.name = "routing.ewma_alpha",
           .type = vt::floating,
           .default_text = "0.2",
           .min = 0.001,
           .max = 1,
           .help = "Weight of a new sample in an endpoint's latency and TTFT averages"},
          [](auto& s) -> auto& { return s.routing.ewma_alpha; }),
      bind<S>(
          {.name = "routing.health_window_ms",
           .type = vt::integer,
           .default_text = "30000",
           .min = 100,
           .max = 3600000,
           .help = "An endpoint's error and 429 rates are measured over this sliding window"},
          [](auto& s) -> auto& { return s.routing.health_window_ms; }),
      bind<S>(
          {.name = "routing.health_min_samples",
           .type = vt::integer,
           .default_text = "5",
           .min = 1,
           .max = 100000,
           .help = "Outcomes in the window before the rates count"},
          [](auto& s) -> auto& { return s.routing.health_min_samples; }),
      bind<S>(
          {.name = "routing.breaker_error_rate",
           .type = vt::floating,
           .default_text = "0.5",
           .min = 0.01,
           .max = 1,
           .help = "An endpoint's circuit breaker opens when this fraction of its outcomes in the "
                   "window failed (connect errors, timeouts, 5xx)"},
          [](auto& s) -> auto& { return s.routing.breaker_error_rate; }),
      bind<S>(
          {.name = "routing.breaker_consecutive",
           .type = vt::integer,
           .default_text = "5",
           .min = 1,
           .max = 10000,
           .help = "...or after this many failures in a row"},
          [](auto& s) -> auto& { return s.routing.breaker_consecutive; }),
      bind<S>(
          {.name = "routing.breaker_open_ms",
           .type = vt::integer,
           .default_text = "5000",
           .min = 10,
           .max = 60000,
           .help = "How long an open breaker stays open before probes; doubles after a failed "
                   "probe, up to 60 s"},
          [](auto& s) -> auto& { return s.routing.breaker_open_ms; }),
      bind<S>(
          {.name = "routing.breaker_probes",
           .type = vt::integer,
           .default_text = "1",
           .min = 1,
           .max = 1000,
           .help = "Requests let through to a half-open endpoint; a success closes the breaker"},
          [](auto& s) -> auto& { return s.routing.breaker_probes; }),
      bind<S>(
          {.name = "routing.latency_target_ms",
           .type = vt::floating,
           .default_text = "2000.0",
           .min = 1,
           .max = 600000,
           .help = "An endpoint whose latency average is this scores 0.5 on latency"},
          [](auto& s) -> auto& { return s.routing.latency_target_ms; }),
      bind<S>(
          {.name = "routing.probe_interval_ms",
           .type = vt::integer,
           .default_text = "1000",
           .min = 0,
           .max = 600000,
           .help = "How often an endpoint whose breaker is open is probed (GET .../models); 0 "
                   "never (it is retried when the open period ends)"},
          [](auto& s) -> auto& { return s.routing.probe_interval_ms; }),
      bind<S>(
          {.name = "routing.affinity_load_factor",
           .type = vt::floating,
           .default_text = "1.25",
           .min = 1,
           .max = 100,
           .help = "Prefix affinity's bound: a replica takes a request only while its requests in "
                   "flight stay within this factor of the mean; beyond, the next replica on the "
                   "ring"},
          [](auto& s) -> auto& { return s.routing.affinity_load_factor; }),
      bind<S>(
          {.name = "routing.aliases",
           .type = vt::string_array,
           .default_text = "[]",
           .help = "Other ids clients may send for a model, as \"alias=model\" (e.g. "
                   "\"gpt-4o=qwen-max\"): served, billed and cached as that model, and listed in "
                   "/v1/models"},
          [](auto& s) -> auto& { return s.routing.aliases; }, check_alias),
      bind<S>(
          {.name = "routing.groups",
           .type = vt::string_array,
           .default_text = "[]",
           .help = "Model groups, as \"group=model:weight,model:weight\" (e.g. "
                   "\"chat=qwen-max:90,deepseek-chat:10\"): requests for the group's id go to one "
                   "of its models by weight, the same model for the same user (the request's "
                   "`user`, else its key, else its tenant): canary and A/B splits. The first "
                   "model is the stable one. The admin API (and tcctl models) changes the weights "
                   "at run time"},
          [](auto& s) -> auto& { return s.routing.groups; }, check_group),
      bind<S>(
          {.name = "routing.auto_model",
           .type = vt::string,
           .default_text = R"("")",
           .help = "Id of the virtual model that picks the cheapest chat model that fits each "
                   "request: heavy requests (long prompts, tools, code, large max_tokens) only "
                   "models with auto_tier heavy, light ones any with auto_tier light or heavy; "
                   "\"\" none"},
          [](auto& s) -> auto& { return s.routing.auto_model; }),
      bind<S>(
          {.name = "routing.auto_heavy_prompt_tokens",
           .type = vt::integer,
           .default_text = "2000",
           .min = 1,
           .max = 10000000,
           .help = "auto_model: a request whose prompt is estimated above this many tokens is "
                   "heavy"},
          [](auto& s) -> auto& { return s.routing.auto_heavy_prompt_tokens; }),
      bind<S>(
          {.name = "routing.auto_heavy_max_tokens",
           .type = vt::integer,
           .default_text = "1024",
           .min = 1,
           .max = 10000000,
           .help = "auto_model: a request asking for more than this many completion tokens is "
                   "heavy"},
          [](auto& s) -> auto& { return s.routing.auto_heavy_max_tokens; }),
      bind<S>(
          {.name = "scheduling.enabled",
           .type = vt::boolean,
           .default_text = "true",
           .help = "Step 8: each model's batcher holds requests in priority order until an "
                   "endpoint has capacity (max_concurrency, capacity_tokens_per_sec); false: "
                   "every request is dispatched at once"},
          [](auto& s) -> auto& { return s.scheduling.enabled; }),
      bind<S>(
          {.name = "scheduling.max_queue_depth",
           .type = vt::integer,
           .default_text = "10000",
           .min = 1,
           .max = 10000000,
           .help = "Requests held per model, all priorities; more are answered 503 queue_full"},
          [](auto& s) -> auto& { return s.scheduling.max_queue_depth; }),
      bind<S>(
          {.name = "scheduling.queue_timeout_ms",
           .type = vt::integer,
           .default_text = "30000",
           .min = 1,
           .max = 3600000,
           .help = "A request held longer is answered 503 queue_timeout with Retry-After"},
          [](auto& s) -> auto& { return s.scheduling.queue_timeout_ms; }),
      bind<S>(
          {.name = "scheduling.aging_ms",
           .type = vt::integer,
           .default_text = "2000",
           .min = 0,
           .max = 3600000,
           .help = "A request that has waited this long is served as one priority higher (never "
                   "into P0), so no priority starves; 0 = no aging"},
          [](auto& s) -> auto& { return s.scheduling.aging_ms; }),
      bind<S>(
          {.name = "scheduling.weight_p1",
           .type = vt::integer,
           .default_text = "8",
           .min = 1,
           .max = 1024,
           .help = "P1's share, in tokens, of the capacity P0 leaves (deficit round-robin)"},
          [](auto& s) -> auto& { return s.scheduling.weight_p1; }),
      bind<S>(
          {.name = "scheduling.weight_p2",
           .type = vt::integer,
           .default_text = "4",
           .min = 1,
           .max = 1024,
           .help = "P2's share, as weight_p1"},
          [](auto& s) -> auto& { return s.scheduling.weight_p2; }),
      bind<S>(
          {.name = "scheduling.weight_p3",
           .type = vt::integer,
           .default_text = "2",
           .min = 1,
           .max = 1024,
           .help = "P3's share, as weight_p1"},
          [](auto& s) -> auto& { return s.scheduling.weight_p3; }),
      bind<S>(
          {.name = "scheduling.weight_p4",
           .type = vt::integer,
           .default_text = "1",
           .min = 1,
           .max = 1024,
           .help = "P4's share, as weight_p1"},
          [](auto& s) -> auto& { return s.scheduling.weight_p4; }),
      bind<S>(
          {.name = "scheduling.quantum_tokens",
           .type = vt::integer,
           .default_text = "1024",
           .min = 1,
           .max = 1048576,
           .help = "Tokens per unit of weight and per tenant turn in the round-robin; smaller "
                   "interleaves finer"},
          [](auto& s) -> auto& { return s.scheduling.quantum_tokens; }),
      bind<S>(
          {.name = "scheduling.p0_reserved",
           .type = vt::floating,
           .default_text = "0.1",
           .min = 0,
           .max = 0.9,
           .help = "Fraction of each endpoint's max_concurrency (rounded down, always leaving one "
                   "slot to the others) that only P0 requests may take, so a P0 request finds a "
                   "free slot under a flood of lower priorities"},
          [](auto& s) -> auto& { return s.scheduling.p0_reserved; }),
      bind<S>(
          {.name = "debug.fault_injection",
           .type = vt::boolean,
           .default_text = "false",
           .help = "Chaos testing: POST /v1/debug/faults on the admin port (owner) can make the "
                   "store fail; never enable in production"},
          [](auto& s) -> auto& { return s.debug.fault_injection; }),

      bind<S>(
          {.name = "log.level",
           .type = vt::string,
           .default_text = R"("info")",
           .help = "Least severe log level written",
           .choices = {"debug", "info", "warn", "error"}},
          [](auto& s) -> auto& { return s.log.level; }),
      bind<S>(
          {.name = "log.access_log",
           .type = vt::boolean,
           .default_text = "false",
           .help = "Write one JSON line per request"},
          [](auto& s) -> auto& { return s.log.access_log; }),

      nested<S>({.name = "providers",
                 .type = vt::table_array,
                 .default_text = "",
                 .help = "Upstream providers, one `[[providers]]` table each"}),
  };

  using P = provider_settings;
  fs.provider = {
      bind<P>(
          {.name = "providers[].name",
           .type = vt::string,
           .default_text = "",
           .help = "Unique provider name (`[a-z0-9_-]+`), shown in x-tc-provider "
                   "and metrics"},
          [](auto& p) -> auto& { return p.name; }, check_provider_name, true),
      bind<P>(
          {.name = "providers[].type",
           .type = vt::string,
           .default_text = R"("openai")",
           .help = "openai: any OpenAI-compatible HTTP endpoint; anthropic: the Anthropic "
                   "Messages API (chat requests translated both ways, streams too); sim: the "
                   "simulated GPU endpoint, in-process",
           .choices = {"openai", "anthropic", "sim"}},
          [](auto& p) -> auto& { return p.type; }),
      bind<P>(
          {.name = "providers[].base_url",
           .type = vt::string,
           .default_text = R"("")",
           .help = "Required for types openai and anthropic, not allowed for sim; `http://` or "
                   "`https://`, e.g. `\"https://api.deepseek.com/v1\"`, "
                   "`\"https://api.anthropic.com/v1\"`"},
          [](auto& p) -> auto& { return p.base_url; }, check_url),
      bind<P>(
          {.name = "providers[].api_key_env",
           .type = vt::string,
           .default_text = R"("")",
           .help = "NAME of the environment variable holding the API key (`[A-Z_][A-Z0-9_]*`); "
                   "the key itself never goes in this file; \"\" = no key"},
          [](auto& p) -> auto& { return p.api_key_env; }, check_env_name),
      bind<P>(
          {.name = "providers[].region",
           .type = vt::string,
           .default_text = R"("")",
           .help = "Free-form region label, given to the router (a tenant residency rule for "
                   "compliance_first is not wired yet)"},
          [](auto& p) -> auto& { return p.region; }),
      bind<P>(
          {.name = "providers[].tags",
           .type = vt::string_array,
           .default_text = "[]",
           .help = "Free-form labels, given to the router (a tenant residency rule for "
                   "compliance_first is not wired yet)"},
          [](auto& p) -> auto& { return p.tags; }, check_token),
      bind<P>(
          {.name = "providers[].connect_timeout_ms",
           .type = vt::integer,
           .default_text = "2000",
           .min = 1,
           .max = 600000,
           .help = "TCP + TLS connect timeout to the provider"},
          [](auto& p) -> auto& { return p.connect_timeout_ms; }),
      bind<P>(
          {.name = "providers[].first_byte_timeout_ms",
           .type = vt::integer,
           .default_text = "30000",
           .min = 1,
           .max = 3600000,
           .help = "Time from sending the request to the first response byte"},
          [](auto& p) -> auto& { return p.first_byte_timeout_ms; }),
      bind<P>(
          {.name = "providers[].total_timeout_ms",
           .type = vt::integer,
           .default_text = "300000",
           .min = 1,
           .max = 86400000,
           .help = "Whole upstream exchange, streaming included"},
          [](auto& p) -> auto& { return p.total_timeout_ms; }),
      bind<P>(
          {.name = "providers[].max_concurrency",
           .type = vt::integer,
           .default_text = "256",
           .min = 1,
           .max = 1000000,
           .help = "Requests in flight to one of this provider's endpoints (one per model) at "
                   "most, its maximum number of sequences: more wait in the model's batcher "
                   "(with scheduling.enabled); also the load part of the routing score"},
          [](auto& p) -> auto& { return p.max_concurrency; }),
      bind<P>(
          {.name = "providers[].capacity_tokens_per_sec",
           .type = vt::floating,
           .default_text = "0.0",
           .min = 0,
           .max = 1e9,
           .help = "Tokens (prompt + completion) per second one of this provider's endpoints "
                   "serves: the batcher's token bucket, reserved by estimate and settled to "
                   "actual usage; 0 = not limited"},
          [](auto& p) -> auto& { return p.capacity_tokens_per_sec; }),
      bind<P>(
          {.name = "providers[].weight",
           .type = vt::integer,
           .default_text = "100",
           .min = 0,
           .max = 10000,
           .help = "Static routing weight among the endpoints of a model; 0 = only when no other "
                   "endpoint can take the request"},
          [](auto& p) -> auto& { return p.weight; }),
      bind<P>(
          {.name = "providers[].batch_dispatch",
           .type = vt::string,
           .default_text = R"("concurrent")",
           .help = "How the batcher sends a released batch here: concurrent (each request its "
                   "own call, up to max_concurrency), prompt_array (single-prompt non-stream "
                   "/v1/completions requests that differ only in their prompt go as one call "
                   "with a list of prompts, as vLLM accepts, and the answer and usage are split "
                   "back; needs scheduling.enabled and a batch window to gather them)",
           .choices = {"concurrent", "prompt_array"}},
          [](auto& p) -> auto& { return p.batch_dispatch; }),
      bind<P>(
          {.name = "providers[].anthropic_version",
           .type = vt::string,
           .default_text = R"("2023-06-01")",
           .help = "Type anthropic: the anthropic-version header sent with every call"},
          [](auto& p) -> auto& { return p.anthropic_version; }),
      bind<P>(
          {.name = "providers[].cache_control",
           .type = vt::string,
           .default_text = R"("system_and_tools")",
           .help = "Type anthropic: system_and_tools marks the last system block and the last "
                   "tool with cache_control ephemeral, so Anthropic caches that prefix and bills "
                   "its repeats as cache reads (the prefix tier); none sends no marks",
           .choices = {"none", "system_and_tools"}},
          [](auto& p) -> auto& { return p.cache_control; }),
      bind<P>(
          {.name = "providers[].anthropic_max_tokens",
           .type = vt::integer,
           .default_text = "4096",
           .min = 1,
           .max = 1000000,
           .help = "Type anthropic: max_tokens sent when the request sets none (the Messages "
                   "API requires it)"},
          [](auto& p) -> auto& { return p.anthropic_max_tokens; }),
      nested<P>({.name = "providers[].models",
                 .type = vt::table_array,
                 .default_text = "",
                 .help = "Models served by this provider, one `[[providers.models]]` table each"}),
  };

  using M = model_settings;
  fs.model = {
      bind<M>(
          {.name = "providers[].models[].name",
           .type = vt::string,
           .default_text = "",
           .help = "The model id clients send; unique across all providers"},
          [](auto& m) -> auto& { return m.name; }, check_token, true),
      bind<M>(
          {.name = "providers[].models[].upstream_name",
           .type = vt::string,
           .default_text = R"("")",
           .help = "The model id sent upstream; \"\" or absent = same as name"},
          [](auto& m) -> auto& { return m.upstream_name; }),
      bind<M>(
          {.name = "providers[].models[].context_window",
           .type = vt::integer,
           .default_text = "32768",
           .min = 1,
           .max = 10000000,
           .help = "Prompt plus completion tokens the model accepts: a chat request longer than "
                   "the smallest window of the model's endpoints gets its context_mode"},
          [](auto& m) -> auto& { return m.context_window; }),
      bind<M>(
          {.name = "providers[].models[].price_input_per_m",
           .type = vt::floating,
           .default_text = "0.0",
           .min = 0,
           .max = unbounded,
           .help = "List price per 1M input (prompt) tokens, in currency; usage records and "
                   "charges use it unless a price is stored through the admin API"},
          [](auto& m) -> auto& { return m.price_input_per_m; }),
      bind<M>(
          {.name = "providers[].models[].price_cached_input_per_m",
           .type = vt::floating,
           .default_text = "0.0",
           .min = 0,
           .max = unbounded,
           .help = "List price per 1M input tokens served from the provider's prompt cache"},
          [](auto& m) -> auto& { return m.price_cached_input_per_m; }),
      bind<M>(
          {.name = "providers[].models[].price_output_per_m",
           .type = vt::floating,
           .default_text = "0.0",
           .min = 0,
           .max = unbounded,
           .help = "List price per 1M output (completion) tokens, in currency"},
          [](auto& m) -> auto& { return m.price_output_per_m; }),
      bind<M>(
          {.name = "providers[].models[].currency",
           .type = vt::string,
           .default_text = R"("CNY")",
           .help = "Currency of the prices; a tenant charged in the other one is converted at "
                   "billing.cny_per_usd",
           .choices = {"CNY", "USD"}},
          [](auto& m) -> auto& { return m.currency; }),
      bind<M>(
          {.name = "providers[].models[].version",
           .type = vt::string,
           .default_text = R"("1")",
           .help = "Part of every cache key of this model: bump it to invalidate its cached "
                   "answers"},
          [](auto& m) -> auto& { return m.version; }, check_token),
      bind<M>(
          {.name = "providers[].models[].kind",
           .type = vt::string,
           .default_text = R"("chat")",
           .help = "chat: /v1/chat/completions and /v1/completions; embedding: "
                   "/v1/embeddings",
           .choices = {"chat", "embedding"}},
          [](auto& m) -> auto& { return m.kind; }),
      bind<M>(
          {.name = "providers[].models[].cache",
           .type = vt::boolean,
           .default_text = "true",
           .help = "Answers of this model may be cached (cache.enabled must be on too)"},
          [](auto& m) -> auto& { return m.cache; }),
      bind<M>(
          {.name = "providers[].models[].cache_ttl_s",
           .type = vt::integer,
           .default_text = "3600",
           .min = 1,
           .max = 31536000,
           .help = "Seconds a cached answer of this model lives; x-tc-cache-ttl may shorten it"},
          [](auto& m) -> auto& { return m.cache_ttl_s; }),
      bind<M>(
          {.name = "providers[].models[].cache_nondeterministic",
           .type = vt::boolean,
           .default_text = "false",
           .help = "Also cache requests that are not deterministic (temperature above 0 and "
                   "no seed); by default only temperature 0 or seeded requests are cached"},
          [](auto& m) -> auto& { return m.cache_nondeterministic; }),
      bind<M>(
          {.name = "providers[].models[].semantic_threshold",
           .type = vt::floating,
           .default_text = "0.95",
           .min = 0.5,
           .max = 1.0,
           .help = "Cosine similarity a semantic cache hit needs for this model"},
          [](auto& m) -> auto& { return m.semantic_threshold; }),
      bind<M>(
          {.name = "providers[].models[].filing_id",
           .type = vt::string,
           .default_text = R"("")",
           .help = "Algorithm-filing ID (CAC) of this model's service: sent as "
                   "x-algorithm-filing-id and algorithm_filing_id; a tenant's own filing_id "
                   "overrides it; \"\" none"},
          [](auto& m) -> auto& { return m.filing_id; }, check_header_text),
      bind<M>(
          {.name = "providers[].models[].prefix_affinity",
           .type = vt::boolean,
           .default_text = "false",
           .help = "The model's endpoints are replicas of one deployment (self-hosted vLLM, "
                   "SGLang): requests with the same system prompt and tools go to the same one, "
                   "for its prefix cache, by consistent hashing with bounded loads"},
          [](auto& m) -> auto& { return m.prefix_affinity; }),
      bind<M>(
          {.name = "providers[].models[].context_mode",
           .type = vt::string,
           .default_text = R"("reject")",
           .help = "A chat prompt longer than context_window (less max_tokens): answered 400 "
                   "context_length_exceeded, or cut to fit: truncate_oldest keeps the system "
                   "messages and the newest turns, truncate_middle also the first turn",
           .choices = {"reject", "truncate_oldest", "truncate_middle"}},
          [](auto& m) -> auto& { return m.context_mode; }),
      bind<M>(
          {.name = "providers[].models[].tokenizer_file",
           .type = vt::string,
           .default_text = R"("")",
           .help = "The model's HuggingFace tokenizer.json (a byte-level BPE: Qwen, DeepSeek, "
                   "Llama 3, GPT-2 style): context protection then counts prompt tokens exactly "
                   "instead of estimating them; checked at start-up (a file that does not exist "
                   "or that uses what the counter does not implement fails it); a relative path "
                   "is from the config file's directory; \"\" = the estimator"},
          [](auto& m) -> auto& { return m.tokenizer_file; }),
      bind<M>(
          {.name = "providers[].models[].batch_strategy",
           .type = vt::string,
           .default_text = R"("adaptive")",
           .help = "When the model's batcher releases held requests together: time (after "
                   "batch_max_wait_ms), size (batch_max_size queued, or the wait), adaptive (a "
                   "window tuned to the arrival rate and batch_latency_target_ms; none when "
                   "traffic is light), priority (adaptive, and a P0 request goes at once)",
           .choices = {"time", "size", "adaptive", "priority"}},
          [](auto& m) -> auto& { return m.batch_strategy; }),
      bind<M>(
          {.name = "providers[].models[].batch_max_wait_ms",
           .type = vt::integer,
           .default_text = "0",
           .min = 0,
           .max = 60000,
           .help = "Longest a request is held for others to join its batch; 0 = never held "
                   "for a batch (only for capacity): right for endpoints that batch "
                   "continuously (vLLM, SGLang, hosted APIs)"},
          [](auto& m) -> auto& { return m.batch_max_wait_ms; }),
      bind<M>(
          {.name = "providers[].models[].batch_max_size",
           .type = vt::integer,
           .default_text = "32",
           .min = 1,
           .max = 4096,
           .help = "Requests released together at most; that many queued releases at once"},
          [](auto& m) -> auto& { return m.batch_max_size; }),
      bind<M>(
          {.name = "providers[].models[].batch_latency_target_ms",
           .type = vt::integer,
           .default_text = "200",
           .min = 1,
           .max = 600000,
           .help = "adaptive and priority: the batch window stays within a quarter of this"},
          [](auto& m) -> auto& { return m.batch_latency_target_ms; }),
      bind<M>(
          {.name = "providers[].models[].auto_tier",
           .type = vt::string,
           .default_text = R"("none")",
           .help = "What routing.auto_model may pick this chat model for: heavy (any request), "
                   "light (light requests only) or none",
           .choices = {"none", "light", "heavy"}},
          [](auto& m) -> auto& { return m.auto_tier; }),
  };

  using Z = sim_settings;
  fs.sim = {
      bind<Z>(
          {.name = "providers[].sim.ttft_ms",
           .type = vt::floating,
           .default_text = "50.0",
           .min = 0,
           .max = 3600000,
           .help = "Time to first token of one sequence; 0 with tokens_per_sec 0 = instant"},
          [](auto& z) -> auto& { return z.ttft_ms; }),
      bind<Z>(
          {.name = "providers[].sim.tokens_per_sec",
           .type = vt::floating,
           .default_text = "60.0",
           .min = 0,
           .max = 10000000,
           .help = "Decode rate of one sequence when it runs alone; 0 = instant"},
          [](auto& z) -> auto& { return z.tokens_per_sec; }),
      bind<Z>(
          {.name = "providers[].sim.max_batch",
           .type = vt::integer,
           .default_text = "32",
           .min = 1,
           .max = 100000,
           .help = "Sequences decoded concurrently; more wait for a slot"},
          [](auto& z) -> auto& { return z.max_batch; }),
      bind<Z>(
          {.name = "providers[].sim.batch_contention",
           .type = vt::floating,
           .default_text = "0.05",
           .min = 0,
           .max = 100,
           .help = "Per-sequence rate = tokens_per_sec / (1 + c * (n - 1)) with n active"},
          [](auto& z) -> auto& { return z.batch_contention; }),
      bind<Z>(
          {.name = "providers[].sim.default_max_tokens",
           .type = vt::integer,
           .default_text = "48",
           .min = 1,
           .max = 1000000,
           .help = "Completion length when the request sets no max_tokens"},
          [](auto& z) -> auto& { return z.default_max_tokens; }),
      bind<Z>(
          {.name = "providers[].sim.embedding_dim",
           .type = vt::integer,
           .default_text = "256",
           .min = 1,
           .max = 65536,
           .help = "Embedding length when the request sets no dimensions"},
          [](auto& z) -> auto& { return z.embedding_dim; }),
      bind<Z>(
          {.name = "providers[].sim.prefix_cache_entries",
           .type = vt::integer,
           .default_text = "0",
           .min = 0,
           .max = 1000000,
           .help = "Simulated automatic prefix cache: the chat calls' leading system messages it "
                   "remembers (LRU). A call whose leading system messages were seen reports "
                   "their tokens as usage.prompt_tokens_details.cached_tokens; 0 = no prefix "
                   "cache (and no prompt_tokens_details)"},
          [](auto& z) -> auto& { return z.prefix_cache_entries; }),
      bind<Z>(
          {.name = "providers[].sim.error_rate",
           .type = vt::floating,
           .default_text = "0.0",
           .min = 0,
           .max = 1,
           .help = "Fraction of requests answered with error_status"},
          [](auto& z) -> auto& { return z.error_rate; }),
      bind<Z>(
          {.name = "providers[].sim.error_status",
           .type = vt::integer,
           .default_text = "503",
           .min = 400,
           .max = 599,
           .help = "HTTP status of injected errors"},
          [](auto& z) -> auto& { return z.error_status; }),
      bind<Z>(
          {.name = "providers[].sim.spike_rate",
           .type = vt::floating,
           .default_text = "0.0",
           .min = 0,
           .max = 1,
           .help = "Fraction of requests whose TTFT grows by spike_ms"},
          [](auto& z) -> auto& { return z.spike_rate; }),
      bind<Z>(
          {.name = "providers[].sim.spike_ms",
           .type = vt::floating,
           .default_text = "0.0",
           .min = 0,
           .max = 3600000,
           .help = "Extra TTFT of a spiked request"},
          [](auto& z) -> auto& { return z.spike_ms; }),
      bind<Z>(
          {.name = "providers[].sim.seed",
           .type = vt::integer,
           .default_text = "0",
           .min = 0,
           .max = unbounded,
           .help = "Mixed into every request's seed; change it for different text"},
          [](auto& z) -> auto& { return z.seed; }),
      nested<Z>({.name = "providers[].sim.outages",
                 .type = vt::table_array,
                 .default_text = "",
                 .help = "Windows in which every request gets 503, one "
                         "`[[providers.sim.outages]]` table each"}),
  };

  using O = sim_outage;
  fs.outage = {
      bind<O>(
          {.name = "providers[].sim.outages[].start_s",
           .type = vt::floating,
           .default_text = "0.0",
           .min = 0,
           .max = unbounded,
           .help = "Start, in seconds since the provider started"},
          [](auto& o) -> auto& { return o.start_s; }),
      bind<O>(
          {.name = "providers[].sim.outages[].end_s",
           .type = vt::floating,
           .default_text = "",
           .min = 0,
           .max = unbounded,
           .help = "End, in seconds since the provider started; > start_s"},
          [](auto& o) -> auto& { return o.end_s; }, nullptr, true),
  };

  using E = moderation_engine_settings;
  fs.engine = {
      bind<E>(
          {.name = "moderation.engines[].name",
           .type = vt::string,
           .default_text = "",
           .help = "Unique engine name (`[a-z0-9_-]+`), shown in audit records and metrics"},
          [](auto& e) -> auto& { return e.name; }, check_provider_name, true),
      bind<E>(
          {.name = "moderation.engines[].type",
           .type = vt::string,
           .default_text = "",
           .help = "keywords: Hyperscan over lexicon files; pii: ID cards, phones, bank cards, "
                   "e-mails; http: a JSON webhook (docs/api.md); openai: a /v1/moderations "
                   "endpoint",
           .choices = {"keywords", "pii", "http", "openai"}},
          [](auto& e) -> auto& { return e.type; }, nullptr, true),
      bind<E>(
          {.name = "moderation.engines[].direction",
           .type = vt::string,
           .default_text = R"("both")",
           .help = "Which text the engine checks",
           .choices = {"both", "input", "output"}},
          [](auto& e) -> auto& { return e.direction; }),
      bind<E>(
          {.name = "moderation.engines[].timeout_ms",
           .type = vt::integer,
           .default_text = "200",
           .min = 1,
           .max = 60000,
           .help = "http/openai: an answer slower than this counts as a failure"},
          [](auto& e) -> auto& { return e.timeout_ms; }),
      bind<E>(
          {.name = "moderation.engines[].on_failure",
           .type = vt::string,
           .default_text = R"("open")",
           .help = "An engine that fails or times out: open leaves it out of the vote, closed "
                   "counts it as block",
           .choices = {"open", "closed"}},
          [](auto& e) -> auto& { return e.on_failure; }),
      bind<E>(
          {.name = "moderation.engines[].weight",
           .type = vt::floating,
           .default_text = "1.0",
           .min = 0,
           .max = 1000,
           .help = "Policy weighted: this engine's vote"},
          [](auto& e) -> auto& { return e.weight; }),
      bind<E>(
          {.name = "moderation.engines[].lexicons",
           .type = vt::string_array,
           .default_text = "[]",
           .help = "keywords: UTF-8 lexicon files (one term a line, `[category]` headers, `#` "
                   "comments); relative paths are from the config file's directory"},
          [](auto& e) -> auto& { return e.lexicons; }),
      bind<E>(
          {.name = "moderation.engines[].default_category",
           .type = vt::string,
           .default_text = R"("general")",
           .help = "keywords: category of terms before any `[category]` header"},
          [](auto& e) -> auto& { return e.default_category; }, check_token),
      bind<E>(
          {.name = "moderation.engines[].actions",
           .type = vt::string_array,
           .default_text = "[]",
           .help = "`\"category=action\"` (keywords: lexicon categories; openai: its category "
                   "names) or `\"kind=action\"` (pii: id_card, phone, bank_card, email); action "
                   "= block | mask | flag | allow"},
          [](auto& e) -> auto& { return e.actions; }, check_category_action),
      bind<E>(
          {.name = "moderation.engines[].default_action",
           .type = vt::string,
           .default_text = R"("block")",
           .help = "What a finding with no entry in actions does (openai: any flagged result)",
           .choices = {"block", "mask", "flag", "allow"}},
          [](auto& e) -> auto& { return e.default_action; }),
      bind<E>(
          {.name = "moderation.engines[].reload_interval_ms",
           .type = vt::integer,
           .default_text = "2000",
           .min = 0,
           .max = 86400000,
           .help = "keywords: how often lexicon files are checked for changes (hot reload: a "
                   "change is read once it held still for one check); 0 never"},
          [](auto& e) -> auto& { return e.reload_interval_ms; }),
      bind<E>(
          {.name = "moderation.engines[].kinds",
           .type = vt::string_array,
           .default_text = R"(["id_card", "phone", "bank_card", "email"])",
           .help = "pii: what to look for"},
          [](auto& e) -> auto& { return e.kinds; }, check_pii_kind),
      bind<E>(
          {.name = "moderation.engines[].url",
           .type = vt::string,
           .default_text = R"("")",
           .help = "http: the webhook URL; openai: the base URL (`…/v1`, `/moderations` is "
                   "appended)"},
          [](auto& e) -> auto& { return e.url; }, check_optional_url),
      bind<E>(
          {.name = "moderation.engines[].api_key_env",
           .type = vt::string,
           .default_text = R"("")",
           .help = "http/openai: NAME of the environment variable with the bearer key; \"\" none"},
          [](auto& e) -> auto& { return e.api_key_env; }, check_env_name),
      bind<E>(
          {.name = "moderation.engines[].model",
           .type = vt::string,
           .default_text = R"("")",
           .help = "openai: the moderation model sent; \"\" lets the endpoint choose"},
          [](auto& e) -> auto& { return e.model; }),
  };
  return fs;
}

template <class Owner>
void add_flat(std::vector<flat_value>& out, const std::vector<field<Owner>>& fs, const Owner& o,
              const std::vector<size_t>& indices) {
  for (const auto& f : fs) {
    if (!f.show) continue;
    std::string path;
    size_t next = 0;
    for (size_t i = 0; i < f.decl.name.size(); ++i) {
      if (f.decl.name.substr(i, 2) == "[]" && next < indices.size()) {
        path += '[';
        path += std::to_string(indices[next++]);
        path += ']';
        ++i;
      } else {
        path += f.decl.name[i];
      }
    }
    out.push_back({&f.decl, std::move(path), f.show(o)});
  }
}

}  // namespace

const field_set& fields() {
  static const field_set fs = build();
  return fs;
}

std::vector<flat_value> flatten(const settings& s) {
  const field_set& fs = fields();
  std::vector<flat_value> out;
  add_flat(out, fs.root, s, {});
  for (size_t p = 0; p < s.providers.size(); ++p) {
    const provider_settings& ps = s.providers[p];
    add_flat(out, fs.provider, ps, {p});
    for (size_t m = 0; m < ps.models.size(); ++m) add_flat(out, fs.model, ps.models[m], {p, m});
    add_flat(out, fs.sim, ps.sim, {p});
    for (size_t o = 0; o < ps.sim.outages.size(); ++o) {
      add_flat(out, fs.outage, ps.sim.outages[o], {p, o});
    }
  }
  for (size_t e = 0; e < s.moderation.engines.size(); ++e)
    add_flat(out, fs.engine, s.moderation.engines[e], {e});
  return out;
}

std::string format_number(double v) {
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  if (std::isnan(v)) return "nan";
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    return std::to_string(static_cast<int64_t>(v));
  }
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, ec == std::errc{} ? end : buf);
}

std::string bounds_text(const setting_decl& decl) {
  if (!decl.choices.empty()) {
    std::string out;
    for (size_t i = 0; i < decl.choices.size(); ++i) {
      out += (i ? ", " : "") + std::string(decl.choices[i]);
    }
    return out;
  }
  if (decl.type != value_type::integer && decl.type != value_type::floating) return "";
  if (decl.min > decl.max) return "";
  if (std::isinf(decl.max)) return ">= " + format_number(decl.min);
  return format_number(decl.min) + ".." + format_number(decl.max);
}

std::string table_of(std::string_view decl_name) {
  auto dot = decl_name.rfind('.');
  if (dot == std::string_view::npos) return "";
  std::string_view parent = decl_name.substr(0, dot);
  bool array = parent.size() >= 2 && parent.substr(parent.size() - 2) == "[]";
  std::string path;
  for (char c : parent) {
    if (c != '[' && c != ']') path += c;
  }
  return array ? "[[" + path + "]]" : "[" + path + "]";
}

std::string_view leaf_of(std::string_view decl_name) {
  auto dot = decl_name.rfind('.');
  return dot == std::string_view::npos ? decl_name : decl_name.substr(dot + 1);
}

}  // namespace tc::config::detail

namespace tc::config {

const std::vector<setting_decl>& schema() {
  static const std::vector<setting_decl> all = [] {
    const detail::field_set& fs = detail::fields();
    std::vector<setting_decl> out;
    auto add = [&out](const auto& group) {
      for (const auto& f : group) out.push_back(f.decl);
    };
    add(fs.root);
    add(fs.provider);
    add(fs.model);
    add(fs.sim);
    add(fs.outage);
    add(fs.engine);
    return out;
  }();
  return all;
}

}  // namespace tc::config
