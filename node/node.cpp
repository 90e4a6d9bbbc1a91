#include "node/node.hpp"

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include <curl/curl.h>
#include <pthread.h>
#include <sched.h>
#include <caf/all.hpp>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "actors/accounts.hpp"
#include "actors/audit_writer.hpp"
#include "actors/batcher.hpp"
#include "actors/cache_shard.hpp"
#include "actors/connection.hpp"
#include "actors/dedup_table.hpp"
#include "actors/embedder.hpp"
#include "actors/ledger.hpp"
#include "actors/moderator.hpp"
#include "actors/provider_health.hpp"
#include "actors/store.hpp"
#include "actors/tenant_quota.hpp"
#include "config/loader.hpp"
#include "node/admin.hpp"
#include "node/admin_api.hpp"
#include "node/http/server.hpp"
#include "node/io_loop.hpp"
#include "node/log.hpp"
#include "node/memory/thread_cache.hpp"
#include "node/metrics.hpp"
#include "node/webhook.hpp"
#include "protocol/messages.hpp"
#include "protocol/openai/models.hpp"

namespace tc::node {

namespace {

/// Puts each thread the actor system starts under SCHED_BATCH. A woken batch thread does not
/// preempt the running one, so an I/O loop that wakes the actors finishes its burst first and
/// they take the whole burst in one go: fewer context switches per request (docs/benchmarks.md,
/// session 13). Runs on the new thread itself; Linux lets any thread choose SCHED_BATCH.
class batch_policy_hook final : public caf::thread_hook {
 public:
  void init(caf::actor_system&) override {}
  void thread_started() override {
    sched_param none{};
    // A failure leaves the thread under SCHED_OTHER: slower under load, never wrong.
    (void)pthread_setschedparam(pthread_self(), SCHED_BATCH, &none);
  }
  void thread_terminates() override {}
};

/// The actor system's settings, from [actors] (tuned by measurement: docs/benchmarks.md).
std::unique_ptr<caf::actor_system_config> make_actor_config(const config::actors_settings& a) {
  auto cfg = std::make_unique<caf::actor_system_config>();
  add_message_types(*cfg);
  if (a.thread_policy == "batch") cfg->add_thread_hook<batch_policy_hook>();
  unsigned threads = a.scheduler_threads;
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  cfg->set("scheduler.max-threads", static_cast<size_t>(threads));
  cfg->set("work-stealing.aggressive-poll-attempts",
           static_cast<size_t>(a.aggressive_poll_attempts));
  cfg->set("work-stealing.moderate-poll-attempts", static_cast<size_t>(a.moderate_poll_attempts));
  cfg->set("logger.file-verbosity", caf::atom("quiet"));
  cfg->set("logger.console-verbosity", caf::atom("quiet"));
  return cfg;
}

/// A provider's API root without a trailing '/': its base_url, or sim://<name>/v1 for a sim.
std::string base_url_of(const config::provider_settings& prov) {
  std::string base = prov.type == "sim" ? "sim://" + prov.name + "/v1" : prov.base_url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  return base;
}

/// Model id -> the endpoints that serve it, from [[providers]] (config order).
std::shared_ptr<actors::pipeline> make_pipeline(const config::settings& s) {
  auto p = std::make_shared<actors::pipeline>();
  uint32_t endpoint = 0;
  // tokenizer_file: each file built once (the loader checked it; it may have changed since).
  std::map<std::string, std::shared_ptr<const scheduling::token_counter>> counters;
  for (const auto& prov : s.providers) {
    const std::string base = base_url_of(prov);
    for (const auto& m : prov.models) {
      actors::model_route r;
      r.provider = prov.name;
      r.endpoint = endpoint++;
      r.upstream_model = m.upstream_name.empty() ? m.name : m.upstream_name;
      r.base_url = base;
      r.embedding = m.kind == "embedding";
      r.context_window = m.context_window;
      r.connect_timeout_ms = prov.connect_timeout_ms;
      r.first_byte_timeout_ms = prov.first_byte_timeout_ms;
      r.total_timeout_ms = prov.total_timeout_ms;
      r.prompt_array = prov.batch_dispatch == "prompt_array";
      r.anthropic = prov.type == "anthropic";
      r.version = m.version;
      r.filing_id = m.filing_id;
      r.cache = m.cache;
      r.cache_ttl_s = m.cache_ttl_s;
      r.cache_nondeterministic = m.cache_nondeterministic;
      r.semantic_threshold = static_cast<float>(m.semantic_threshold);
      r.price_input_per_m = m.price_input_per_m;
      r.price_cached_input_per_m = m.price_cached_input_per_m;
      r.price_output_per_m = m.price_output_per_m;
      r.currency = m.currency;
      r.region = prov.region;
      r.tags = prov.tags;
      r.weight = prov.weight;
      r.max_concurrency = prov.max_concurrency;
      r.capacity_tokens_per_sec = prov.capacity_tokens_per_sec;
      auto& entry = p->models[m.name];
      scheduling::parse_context_mode(m.context_mode, entry.context_mode);
      if (!m.tokenizer_file.empty() && entry.counter == nullptr) {  // endpoints agree on it
        auto& counter = counters[m.tokenizer_file];
        std::string error;
        if (counter == nullptr) counter = config::load_tokenizer(m.tokenizer_file, error);
        if (counter == nullptr) throw std::runtime_error("model " + m.name + ": " + error);
        entry.counter = counter;
      }
      entry.context_window = entry.endpoints.empty()
                                 ? m.context_window
                                 : std::min(entry.context_window, m.context_window);
      auto& endpoints = entry.endpoints;
      r.index = static_cast<uint32_t>(endpoints.size());
      endpoints.push_back(std::move(r));
    }
  }
  // An alias is the model under another id: the same endpoints (and health, and ring).
  for (const auto& a : s.routing.aliases) {
    const auto eq = a.find('=');
    auto target = p->models.find(a.substr(eq + 1));
    if (eq != std::string::npos && target != p->models.end())
      p->aliases.emplace(a.substr(0, eq), a.substr(eq + 1));
  }
  // Groups (the loader checked their members), and the auto model's choices: every chat model
  // with an auto_tier, at its first endpoint's list price in CNY.
  for (const auto& g : s.routing.groups) {
    const auto eq = g.find('=');
    actors::model_group group;
    for (auto& [model, weight] : config::parse_group(g.substr(eq + 1))) {
      group.members.push_back(std::move(model));
      group.weights.push_back(weight);
    }
    p->groups.emplace(g.substr(0, eq), std::move(group));
  }
  p->auto_model.name = s.routing.auto_model;
  p->auto_model.thresholds.heavy_prompt_tokens = s.routing.auto_heavy_prompt_tokens;
  p->auto_model.thresholds.heavy_max_tokens = s.routing.auto_heavy_max_tokens;
  std::set<std::string> chosen;
  for (const auto& prov : s.providers) {
    for (const auto& m : prov.models) {
      routing::auto_choice c;
      if (m.kind != "chat" || !routing::parse_weight_class(m.auto_tier, c.tier) ||
          !chosen.insert(m.name).second)
        continue;
      const double to_cny = m.currency == "USD" ? s.billing.cny_per_usd : 1.0;
      c.name = m.name;
      c.context_window = p->models.at(m.name).context_window;
      c.price_in_per_m = m.price_input_per_m * to_cny;
      c.price_out_per_m = m.price_output_per_m * to_cny;
      p->auto_model.choices.push_back(std::move(c));
    }
  }
  return p;
}

/// The cache_shard actors of [cache], spawned in dependency order before the loops, and the
/// tables they share with the loops' exact-hit lane.
std::vector<actors::cache_shard_actor> spawn_cache(
    caf::actor_system& sys, const config::cache_settings& c,
    std::vector<std::shared_ptr<actors::shared_cache_store>>& stores) {
  std::vector<actors::cache_shard_actor> shards;
  if (!c.enabled) return shards;
  auto cfg = std::make_shared<actors::cache_shard_config>();
  cfg->limits.max_entries = std::max<uint64_t>(1, c.max_entries / c.shards);
  cfg->limits.max_bytes = std::max<uint64_t>(4096, c.max_bytes / c.shards);
  cfg->semantic.dimension = c.embedding_dim;
  cfg->semantic.m = c.semantic_m;
  cfg->semantic.ef_search = c.semantic_ef;
  cfg->semantic_budget_pct = c.semantic_budget_pct;
  for (uint32_t i = 0; i < c.shards; ++i) {
    stores.push_back(std::make_shared<actors::shared_cache_store>());
    shards.push_back(sys.spawn(actors::cache_shard, cfg, stores.back()));
  }
  return shards;
}

/// Sums every shard's stats (admin thread: may block, up to 2 s per shard).
cache_stats collect_stats(caf::actor_system& sys,
                          const std::vector<actors::cache_shard_actor>& shards) {
  cache_stats total;
  caf::scoped_actor self{sys};
  for (const auto& shard : shards) {
    self->request(shard, std::chrono::seconds(2), actors::cache_stats_atom::value)
        .receive(
            [&](const cache_stats& st) {
              total.entries += st.entries;
              total.bytes += st.bytes;
              total.evictions += st.evictions;
              total.expirations += st.expirations;
              total.semantic_entries += st.semantic_entries;
              total.semantic_bytes += st.semantic_bytes;
              total.namespaces += st.namespaces;
              total.semantic_skipped_searches += st.semantic_skipped_searches;
              total.semantic_skipped_inserts += st.semantic_skipped_inserts;
            },
            [](const caf::error&) {});  // a busy shard is left out of this scrape
  }
  return total;
}

/// POST /v1/cache/invalidate: {"tenant": "...", "model": "...", "namespace": "<32 hex>"}.
std::pair<int, std::string> invalidate(caf::actor_system& sys,
                                       const std::vector<actors::cache_shard_actor>& shards,
                                       const std::string& body) {
  auto bad = [](std::string message, std::string param) {
    return std::pair<int, std::string>{
        400, openai::error_body(openai::invalid_request(std::move(message), std::move(param)))};
  };
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseIterativeFlag>(body.empty() ? "{}" : body.c_str());
  if (doc.HasParseError() || !doc.IsObject()) return bad("The body must be a JSON object.", "");
  cache_filter f;
  for (const auto& m : doc.GetObject()) {
    std::string_view name(m.name.GetString(), m.name.GetStringLength());
    if (!m.value.IsString())
      return bad("'" + std::string(name) + "' must be a string.", std::string(name));
    std::string v(m.value.GetString(), m.value.GetStringLength());
    if (name == "tenant") {
      f.scope = "tenant:" + v;
    } else if (name == "model") {
      f.model = v;
    } else if (name == "namespace") {
      if (!canonical::digest::parse_hex(v, f.ns))
        return bad("'namespace' must be 32 hex digits.", "namespace");
    } else {
      return bad("Unknown field '" + std::string(name) + "'; expected tenant, model, namespace.",
                 std::string(name));
    }
  }
  uint64_t removed = 0;
  caf::scoped_actor self{sys};
  for (const auto& shard : shards) {
    self->request(shard, std::chrono::seconds(5), actors::cache_drop_atom::value, f)
        .receive([&](uint64_t n) { removed += n; }, [](const caf::error&) {});
  }
  return {200, "{\"removed\":" + std::to_string(removed) + "}"};
}

/// A budget alert as its webhook body.
std::string alert_json(const actors::budget_alert& a, const std::string& node) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  w.StartObject();
  w.Key("type");
  w.String("budget_alert");
  w.Key("node");
  w.String(node.c_str(), static_cast<rapidjson::SizeType>(node.size()));
  w.Key("scope");
  w.String(a.scope.c_str(), static_cast<rapidjson::SizeType>(a.scope.size()));
  w.Key("period");
  w.String(a.period.c_str(), static_cast<rapidjson::SizeType>(a.period.size()));
  w.Key("percent");
  w.Uint(a.percent);
  w.Key("spent_micros");
  w.Int64(a.spent_micros);
  w.Key("budget_micros");
  w.Int64(a.budget_micros);
  w.Key("ts_ms");
  w.Int64(actors::unix_ms());
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

/// POST /v1/debug/faults (debug.fault_injection only): {"store_writes": "fail" | "ok"}; an
/// empty body reads the current faults.
std::pair<int, std::string> set_faults(actors::store& db, const std::string& body) {
  if (!body.empty()) {
    rapidjson::Document doc;
    doc.Parse<rapidjson::kParseIterativeFlag>(body.c_str());
    const auto* v = !doc.HasParseError() && doc.IsObject() && doc.HasMember("store_writes")
                        ? &doc["store_writes"]
                        : nullptr;
    const std::string_view mode =
        v != nullptr && v->IsString() ? std::string_view(v->GetString()) : std::string_view();
    if (mode != "fail" && mode != "ok") {
      return {400, openai::error_body(openai::invalid_request(
                       "The body must be {\"store_writes\": \"fail\" | \"ok\"}.", "store_writes"))};
    }
    db.inject_write_faults(mode == "fail");
    log::warn("fault_injected", {{"store_writes", mode}});
  }
  return {200, std::string("{\"store_writes\":\"") + (db.write_faults() ? "fail" : "ok") + "\"}"};
}

}  // namespace

struct gateway::impl {
  explicit impl(config::settings s)
      : settings(std::move(s)),
        actor_cfg(make_actor_config(settings.actors)),
        system(*actor_cfg),
        admin(metrics) {}

  config::settings settings;
  std::unique_ptr<caf::actor_system_config> actor_cfg;
  caf::actor_system system;
  node::metrics metrics;
  admin_server admin;
  std::shared_ptr<actors::pipeline> pipeline;
  std::vector<actors::cache_shard_actor> cache_shards;
  std::vector<caf::actor> dedup_tables;
  std::shared_ptr<actors::store> db;
  std::shared_ptr<actors::directory_cell> directory;
  caf::actor accounts;
  caf::actor ledger;
  /// The ledger's book and hooks, lent to the audit writer: a request's usage and audit records
  /// are written in one batch there.
  std::shared_ptr<const actors::audit_ledger> audit_ledger;
  caf::actor audit;
  caf::actor audit_pruner;
  caf::actor moderator;
  std::vector<caf::actor> quota;
  std::vector<caf::actor> health;    ///< provider_health, by endpoint
  std::vector<caf::actor> batchers;  ///< one per model
  caf::actor embedder;               ///< cache.embedder = "openai" only
  admin_api_deps admin_deps;
  loop_context ctx;
  std::vector<std::unique_ptr<io_loop>> loops;
  std::string data_addr;
  std::string admin_addr;
  bool started = false;
  bool stopped = false;

  /// Long-lived actors stop in reverse order of their start: the cache shards last. Also on a
  /// failed start, or the actor system's destructor would wait for them forever.
  void stop_actors() {
    for (auto& b : batchers) caf::anon_send_exit(b, caf::exit_reason::user_shutdown);
    batchers.clear();
    for (auto& h : health) caf::anon_send_exit(h, caf::exit_reason::user_shutdown);
    health.clear();
    if (embedder) caf::anon_send_exit(embedder, caf::exit_reason::user_shutdown);
    embedder = caf::actor{};
    for (auto& q : quota) caf::anon_send_exit(q, caf::exit_reason::user_shutdown);
    quota.clear();
    if (moderator) caf::anon_send_exit(moderator, caf::exit_reason::user_shutdown);
    moderator = caf::actor{};
    if (audit_pruner) caf::anon_send_exit(audit_pruner, caf::exit_reason::user_shutdown);
    audit_pruner = caf::actor{};
    if (audit) {
      // Every record sent so far is written before the audit writer stops.
      caf::scoped_actor self{system};
      self->request(audit, std::chrono::seconds(10), actors::audit_sync_atom::value)
          .receive([](bool) {}, [](const caf::error&) {});
      caf::anon_send_exit(audit, caf::exit_reason::user_shutdown);
      audit = caf::actor{};
    }
    if (ledger) {
      // Every record sent so far is written before the ledger stops.
      caf::scoped_actor self{system};
      self->request(ledger, std::chrono::seconds(10), actors::ledger_sync_atom::value)
          .receive([](bool) {}, [](const caf::error&) {});
      caf::anon_send_exit(ledger, caf::exit_reason::user_shutdown);
      ledger = caf::actor{};
    }
    if (accounts) caf::anon_send_exit(accounts, caf::exit_reason::user_shutdown);
    accounts = caf::actor{};
    for (auto& t : dedup_tables) caf::anon_send_exit(t, caf::exit_reason::user_shutdown);
    dedup_tables.clear();
    for (auto& shard : cache_shards) caf::anon_send_exit(shard, caf::exit_reason::user_shutdown);
    cache_shards.clear();
  }
  void start_accounts();
  void start_compliance();
  void start_routing();
  void start_batchers();
  void start_embedder();
  ~impl() { stop_actors(); }
};

/// The store, the account tables, the ledger and the quota shards (issue 4), wired into the
/// pipeline. Throws on a store that cannot be opened or read: the node must not serve unmetered.
void gateway::impl::start_accounts() {
  auto& d = *this;
  const auto& s = d.settings;
  actors::store::status st;
  const bool fsync = s.store.durability == "fsync";
  d.db = actors::store::open(s.store.path, fsync, st);
  if (!d.db) throw std::runtime_error("store.path '" + s.store.path + "': " + st.message);
  if (s.store.path.empty())
    log::warn("store_in_memory",
              {{"why",
                "store.path is empty: accounts and usage are lost at exit, and answers "
                "are not held for their records (nothing in memory survives a crash)"}});
  auto dir = std::make_shared<actors::directory>();
  st = actors::load_directory(*d.db, *dir);
  if (!st.ok()) throw std::runtime_error("store: cannot load the account tables: " + st.message);
  d.directory = std::make_shared<actors::directory_cell>();
  d.directory->set(std::move(dir));
  d.accounts = d.system.spawn<caf::detached>(actors::accounts_actor, d.db, d.directory);

  auto book = std::make_shared<actors::ledger_book>(*d.db, st);
  if (!st.ok()) throw std::runtime_error("store: cannot load the ledger: " + st.message);
  const int64_t today = billing::day_of(actors::unix_ms());
  auto spent = book->spent_by_scope(today);
  auto& a = d.pipeline->accounts;
  auto ledger_hooks = std::make_shared<actors::ledger_hooks>();
  ledger_hooks->on_written = [c = &d.metrics.ledger_records_total.Add({}),
                              health = a.store_health](size_t n) {
    c->Increment(static_cast<double>(n));
    if (health->exchange(actors::store_ok) != actors::store_ok) log::info("ledger_recovered");
  };
  ledger_hooks->on_write_failed = [health = a.store_health,
                                   max_pending = s.store.max_pending_records](
                                      const std::string& error, size_t pending) {
    health->store(pending >= max_pending ? actors::store_full : actors::store_failing);
    log::error("ledger_write_failed", {{"error", error}, {"pending", pending}});
  };
  // Held answers go out once their record is durable (write-ahead).
  ledger_hooks->on_durable = [p = d.pipeline.get()](const std::vector<reply_target>& held) {
    for (const auto& to : held) p->ports.at(to.loop)->release(to);
  };
  ledger_hooks->release_on_failure = s.store.fail_mode == "open";
  ledger_hooks->records_behind = a.records_behind;
  d.audit_ledger =
      std::make_shared<const actors::audit_ledger>(actors::audit_ledger{book, ledger_hooks});
  d.ledger = d.system.spawn<caf::detached>(actors::ledger, d.db, std::move(book), ledger_hooks);

  auto quota_hooks = std::make_shared<actors::quota_hooks>();
  std::shared_ptr<webhook_sender> webhook;  // owned by the hook: lives as long as the shards
  if (!s.billing.alert_webhook.empty())
    webhook = std::make_shared<webhook_sender>(s.billing.alert_webhook, 5000);
  quota_hooks->on_alert = [&m = d.metrics, webhook,
                           node = s.node_id](const actors::budget_alert& a) {
    log::warn("budget_alert", {{"scope", a.scope},
                               {"period", a.period},
                               {"percent", a.percent},
                               {"spent_micros", static_cast<long long>(a.spent_micros)},
                               {"budget_micros", static_cast<long long>(a.budget_micros)}});
    m.budget_alerts_total.Add({{"period", a.period}, {"percent", std::to_string(a.percent)}})
        .Increment();
    if (webhook) webhook->post(alert_json(a, node));
  };
  // Reservations never settled are dropped after the longest total timeout plus a minute.
  int64_t max_age_ms = 60'000;
  for (const auto& prov : s.providers)
    max_age_ms = std::max<int64_t>(max_age_ms, int64_t{prov.total_timeout_ms} + 60'000);
  for (uint32_t i = 0; i < s.billing.quota_shards; ++i)
    d.quota.push_back(d.system.spawn(actors::tenant_quota, i, quota_hooks, max_age_ms));
  // Budgets survive a restart: today's and this month's spend of every tenant, project and key,
  // from the ledger (the tenant's model-glob scopes start again from 0).
  for (const auto& sp : spent) {
    caf::anon_send(d.quota[actors::tenant_shard(sp.tenant, d.quota.size())],
                   actors::quota_spend_atom::value, sp.scope, today, sp.amount.day_micros,
                   sp.amount.month_micros);
  }

  a.required = s.auth.required;
  a.anonymous_tenant = s.auth.anonymous_tenant;
  a.directory = d.directory;
  a.quota = d.quota;
  a.ledger = d.ledger;
  a.cny_per_usd = s.billing.cny_per_usd;
  a.cache_hit_charge = s.billing.cache_hit_charge;
  // Write-ahead buys one thing: a crash never loses the record of an answer a client got. A
  // store in memory loses every record in a crash, so holding answers for it buys nothing.
  a.write_ahead = s.billing.write_ahead && !s.store.path.empty();
  a.max_records_behind = s.store.max_records_behind;
  a.fail_open = s.store.fail_mode == "open";
  a.fallback.rpm = s.store.fallback_rpm;
  a.fallback.max_concurrent = s.store.fallback_concurrency;
  a.settling = std::make_shared<std::atomic<int64_t>>(0);
}

/// Step 9's ranking (issue 6): the board every endpoint's live state is read from, and one
/// provider_health actor per endpoint, which probes through the first loop.
void gateway::impl::start_routing() {
  auto& d = *this;
  const auto& r = d.settings.routing;
  size_t endpoints = 0;
  for (const auto& [name, entry] : d.pipeline->models) endpoints += entry.endpoints.size();
  auto board = std::make_shared<actors::routing_board>(endpoints);
  routing::health_settings hs;
  hs.ewma_alpha = r.ewma_alpha;
  hs.window_ms = r.health_window_ms;
  hs.min_samples = r.health_min_samples;
  hs.open_error_rate = r.breaker_error_rate;
  hs.open_consecutive = r.breaker_consecutive;
  hs.open_ms = r.breaker_open_ms;
  hs.half_open_probes = r.breaker_probes;
  hs.latency_target_ms = r.latency_target_ms;
  board->health.resize(endpoints);
  for (const auto& [name, entry] : d.pipeline->models) {
    for (const auto& e : entry.endpoints) {
      actors::probe_target probe;
      probe.provider = e.provider;
      probe.url = e.base_url + "/models";
      probe.timeout_ms = e.connect_timeout_ms + e.first_byte_timeout_ms;
      probe.interval_ms = r.probe_interval_ms;
      probe.port = d.pipeline->ports.front();
      board->health[e.endpoint] =
          d.system.spawn(actors::provider_health, board, e.endpoint, hs, std::move(probe));
    }
  }
  d.health = board->health;
  for (const auto& prov : d.settings.providers) {
    for (const auto& m : prov.models) {
      auto& entry = d.pipeline->models[m.name];
      if (!m.prefix_affinity || entry.endpoints.size() < 2 || entry.ring) continue;
      std::vector<std::string> ids;
      for (const auto& e : entry.endpoints) ids.push_back(e.provider);
      entry.ring = std::make_shared<const routing::affinity_ring>(std::move(ids));
    }
  }
  auto& plan = d.pipeline->routing;
  plan.board = std::move(board);
  routing::parse_policy(r.policy, plan.policy);
  plan.weights.latency = r.weight_latency;
  plan.weights.price = r.weight_price;
  plan.weights.load = r.weight_load;
  plan.weights.availability = r.weight_availability;
  plan.max_attempts = r.max_attempts;
  plan.affinity_load_factor = r.affinity_load_factor;
  if (d.settings.scheduling.enabled) start_batchers();
}

/// Step 8: one batcher per model, shaping to its endpoints' capacities (issue 6).
void gateway::impl::start_batchers() {
  auto& d = *this;
  const auto& sc = d.settings.scheduling;
  scheduling::queue_settings qs;
  qs.max_depth = sc.max_queue_depth;
  qs.timeout_ms = sc.queue_timeout_ms;
  qs.aging_ms = sc.aging_ms;
  qs.weights = {0, sc.weight_p1, sc.weight_p2, sc.weight_p3, sc.weight_p4};
  qs.quantum_tokens = sc.quantum_tokens;
  for (const auto& prov : d.settings.providers) {
    for (const auto& m : prov.models) {
      auto& entry = d.pipeline->models[m.name];
      if (entry.batcher) continue;  // another provider of the model came first
      auto cfg = std::make_shared<actors::batcher_config>();
      cfg->model = m.name;
      cfg->queue = qs;
      scheduling::parse_strategy(m.batch_strategy, cfg->batch.s);
      cfg->batch.max_wait_us = m.batch_max_wait_ms * 1000;
      cfg->batch.max_batch = m.batch_max_size;
      cfg->batch.latency_target_us = m.batch_latency_target_ms * 1000;
      for (const auto& e : entry.endpoints) {
        // Rounded down, and at least one slot stays open to P1-P4.
        const auto reserved = static_cast<uint32_t>(sc.p0_reserved * e.max_concurrency);
        actors::batcher_endpoint be;
        be.endpoint = e.endpoint;
        be.max_concurrency = e.max_concurrency;
        be.tokens_per_s = e.capacity_tokens_per_sec;
        be.p0_reserved = std::min(reserved, e.max_concurrency - 1);
        be.prompt_array = e.prompt_array;
        be.provider = e.provider;
        be.url = e.base_url + "/completions";
        be.upstream_model = e.upstream_model;
        be.timeout_ms = e.total_timeout_ms;
        cfg->endpoints.push_back(std::move(be));
      }
      cfg->ports = d.pipeline->ports;
      cfg->board = d.pipeline->routing.board;
      cfg->metrics = node::batcher_series(d.metrics, m.name);
      cfg->gate = actors::make_gate(*cfg);
      entry.gate = cfg->gate;
      entry.batcher = d.system.spawn(actors::batcher, std::move(cfg));
      d.batchers.push_back(entry.batcher);
    }
  }
}

/// The openai embedder of the semantic tier (issue 3): one actor, calling through the loops.
void gateway::impl::start_embedder() {
  auto& d = *this;
  const auto& c = d.settings.cache;
  if (!c.enabled || !c.semantic_tier || c.embedder != "openai") return;
  auto prov = std::find_if(d.settings.providers.begin(), d.settings.providers.end(),
                           [&](const auto& p) { return p.name == c.embedder_provider; });
  if (prov == d.settings.providers.end())  // the loader checked it
    throw std::runtime_error("cache.embedder_provider: no provider " + c.embedder_provider);
  auto cfg = std::make_shared<actors::embedder_config>();
  cfg->provider = prov->name;
  cfg->url = base_url_of(*prov) + "/embeddings";
  cfg->model = c.embedder_model;
  cfg->dimension = c.embedding_dim;
  cfg->send_dimensions = c.embedder_send_dimensions;
  cfg->batch_max = c.embedder_batch_max;
  cfg->batch_wait_ms = c.embedder_batch_wait_ms;
  cfg->timeout_ms = c.embedder_timeout_ms;
  cfg->max_calls = c.embedder_max_calls;
  cfg->max_pending = c.embedder_max_pending;
  cfg->max_text_bytes = c.embedder_max_text_bytes;
  cfg->ports = d.pipeline->ports;
  cfg->metrics = node::embedder_series(d.metrics);
  d.embedder = d.system.spawn(actors::embedder, std::move(cfg));
  d.pipeline->cache.embedder = d.embedder;
}

/// Moderation (the published rules and the moderator that reloads them) and the audit writer
/// (issue 5). Throws on rules that cannot be compiled or an audit key that is not usable.
void gateway::impl::start_compliance() {
  auto& d = *this;
  const auto& s = d.settings;
  auto& c = d.pipeline->compliance;
  std::string error;
  auto rules = actors::compile_rules(s.moderation, error);
  if (!rules) throw std::runtime_error("moderation: " + error);
  c.moderation->set(std::move(rules));
  if (s.moderation.enabled) {
    // Detached: a reload compiles the lexicons (263 ms for 10,000 terms) off the scheduler.
    d.moderator = d.system.spawn<caf::detached>(
        actors::moderator, c.moderation, s.moderation, [](const std::string& error) {
          if (error.empty())
            log::info("moderation_reloaded");
          else
            log::error("moderation_reload_failed", {{"error", error}, {"kept", "previous rules"}});
        });
  }
  if (!s.audit.enabled) return;
  auto as = std::make_shared<actors::audit_settings>();
  audit::parse_hash_algo(s.audit.hash, as->algo);
  as->node = s.node_id;
  as->retention_days = s.audit.retention_days;
  as->text = s.audit.text == "clear"    ? actors::audit_settings::text_mode::clear
             : s.audit.text == "sealed" ? actors::audit_settings::text_mode::sealed
                                        : actors::audit_settings::text_mode::none;
  if (as->text == actors::audit_settings::text_mode::sealed) {
    const char* hex =
        s.audit.sm4_key_env.empty() ? nullptr : std::getenv(s.audit.sm4_key_env.c_str());
    std::string key;
    for (size_t i = 0; hex != nullptr && hex[i] != '\0' && hex[i + 1] != '\0'; i += 2) {
      auto nibble = [](char ch) -> int {
        if (ch >= '0' && ch <= '9') return ch - '0';
        if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
        if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
        return -1;
      };
      const int hi = nibble(hex[i]), lo = nibble(hex[i + 1]);
      if (hi < 0 || lo < 0) break;
      key += static_cast<char>(hi * 16 + lo);
    }
    if (key.size() != 16 || std::string_view(hex).size() != 32)
      throw std::runtime_error("audit.text = \"sealed\" needs $" + s.audit.sm4_key_env +
                               " to hold the SM4 key as 32 hex digits");
    as->sm4_key = std::move(key);
  }
  auto hooks = std::make_shared<actors::audit_hooks>();
  hooks->on_written = [c = &d.metrics.audit_records_total.Add({})](size_t n) {
    c->Increment(static_cast<double>(n));
  };
  hooks->on_write_failed = [](const std::string& error, size_t pending) {
    log::error("audit_write_failed", {{"error", error}, {"pending", pending}});
  };
  hooks->on_durable = [p = d.pipeline.get()](const std::vector<reply_target>& held) {
    for (const auto& to : held) p->ports.at(to.loop)->release(to);
  };
  hooks->release_on_failure = s.store.fail_mode == "open";
  hooks->records_behind = d.pipeline->accounts.records_behind;
  d.audit = d.system.spawn<caf::detached>(actors::audit_writer, d.db, as, hooks, d.audit_ledger);
  c.audit = d.audit;
  c.audit_carries_usage = d.audit_ledger != nullptr;
  c.audit_algo = as->algo;
  c.audit_keeps_text = as->text != actors::audit_settings::text_mode::none;
  c.audit_write_ahead = s.audit.write_ahead && !s.store.path.empty();  // as billing's
  if (s.audit.retention_days != 0) {
    // Retention runs now and then every prune_interval_s.
    const auto every = std::chrono::seconds(s.audit.prune_interval_s);
    d.audit_pruner = d.system.spawn([writer = d.audit, every](caf::event_based_actor* self) {
      using tick = caf::atom_constant<caf::atom("a_tick")>;
      self->send(self, tick::value);
      return caf::behavior{[self, writer, every](tick) {
        caf::anon_send(writer, actors::audit_prune_atom::value, actors::unix_ms());
        self->delayed_send(self, every, tick::value);
      }};
    });
  }
}

gateway::gateway(config::settings settings) : impl_(std::make_unique<impl>(std::move(settings))) {}

gateway::~gateway() {
  shutdown();
}

void gateway::start() {
  auto& d = *impl_;
  const auto& s = d.settings;
  log::set_level(s.log.level);

  d.pipeline = make_pipeline(s);
  d.cache_shards = spawn_cache(d.system, s.cache, d.pipeline->cache.stores);
  d.pipeline->cache.loop_hits = s.cache.loop_hits;
  for (const auto& [name, entry] : d.pipeline->models)
    for (const actors::model_route& r : entry.endpoints)
      d.pipeline->cache.any_nondeterministic |= r.cache_nondeterministic;
  d.pipeline->cache.enabled = s.cache.enabled;
  d.pipeline->cache.template_tier = s.cache.template_tier;
  d.pipeline->cache.semantic_tier = s.cache.semantic_tier;
  d.pipeline->cache.semantic_multi_turn = s.cache.semantic_multi_turn;
  d.pipeline->cache.lookup_timeout_ms = s.cache.lookup_timeout_ms;
  d.pipeline->cache.embed.dimension = s.cache.embedding_dim;
  d.pipeline->cache.shards = d.cache_shards;
  if (s.cache.enabled && s.cache.dedup) {
    for (uint32_t i = 0; i < s.cache.shards; ++i)
      d.dedup_tables.push_back(d.system.spawn(actors::dedup_table, i));
  }
  d.pipeline->cache.dedup = s.cache.dedup;
  d.pipeline->cache.dedup_tables = d.dedup_tables;
  d.start_accounts();
  d.start_compliance();
  d.ctx.system = &d.system;
  d.ctx.metrics = &d.metrics;
  d.ctx.settings = &d.settings;
  std::vector<openai::model_card> cards;
  for (const auto& prov : s.providers) {
    for (const auto& m : prov.models) {
      openai::model_card card{m.name, prov.name, 1700000000};
      // A model served by several providers is listed once, owned by the first.
      if (d.ctx.model_bodies.emplace(m.name, openai::model_body(card)).second)
        cards.push_back(std::move(card));
    }
    if (!prov.api_key_env.empty()) {
      const char* key = std::getenv(prov.api_key_env.c_str());
      if (key != nullptr && *key != '\0') {
        d.ctx.provider_auth.emplace(prov.name, prov.type == "anthropic"
                                                   ? std::string("x-api-key: ") + key
                                                   : std::string("Authorization: Bearer ") + key);
      } else {
        log::warn("provider_key_missing", {{"provider", prov.name}, {"env", prov.api_key_env}});
      }
    }
  }
  for (const auto& [alias, model] : d.pipeline->aliases) {
    openai::model_card card{alias, d.pipeline->models.at(model).endpoints.front().provider,
                            1700000000};
    if (d.ctx.model_bodies.emplace(alias, openai::model_body(card)).second)
      cards.push_back(std::move(card));
  }
  // Groups and the auto model are listed as owned by the gateway (they pick a model per request).
  std::vector<std::string> virtual_ids;
  for (const auto& [group, g] : d.pipeline->groups) virtual_ids.push_back(group);
  if (!d.pipeline->auto_model.name.empty()) virtual_ids.push_back(d.pipeline->auto_model.name);
  std::sort(virtual_ids.begin(), virtual_ids.end());
  for (const auto& id : virtual_ids) {
    openai::model_card card{id, "tokenschain", 1700000000};
    if (d.ctx.model_bodies.emplace(id, openai::model_body(card)).second)
      cards.push_back(std::move(card));
  }
  for (const auto& id : virtual_ids) {
    auto g = d.pipeline->groups.find(id);
    if (g == d.pipeline->groups.end()) continue;  // the auto model
    admin_api_deps::group_config gc;
    gc.name = id;
    for (size_t i = 0; i < g->second.members.size(); ++i)
      gc.members.emplace_back(g->second.members[i], g->second.weights[i]);
    d.admin_deps.config_groups.push_back(std::move(gc));
  }
  d.ctx.models_body = openai::models_list_body(cards);

  // Data port: one loop per io_thread, each with its own SO_REUSEPORT listener.
  std::string host;
  uint16_t port = 0;
  if (!http::split_host_port(s.server.listen, host, port))
    throw std::runtime_error("server.listen: expected HOST:PORT, got '" + s.server.listen + "'");
  const uint32_t n = std::max(1u, s.server.io_threads);
  for (uint32_t i = 0; i < n; ++i) d.loops.push_back(std::make_unique<io_loop>(i, d.ctx));
  for (auto& l : d.loops) d.pipeline->ports.push_back(l.get());
  d.start_embedder();
  d.start_routing();
  d.ctx.pipeline = d.pipeline;
  int bound = d.loops[0]->listen(host, port, n > 1);
  if (bound < 0)
    throw std::runtime_error("cannot listen on " + s.server.listen + ": " + uv_strerror(bound));
  for (uint32_t i = 1; i < n; ++i) {
    int r = d.loops[i]->listen(host, static_cast<uint16_t>(bound), true);
    if (r < 0) throw std::runtime_error("cannot listen on loop " + std::to_string(i));
  }
  d.data_addr = host + ":" + std::to_string(bound);

  std::string admin_host;
  uint16_t admin_port = 0;
  if (!http::split_host_port(s.server.admin_listen, admin_host, admin_port))
    throw std::runtime_error("server.admin_listen: expected HOST:PORT, got '" +
                             s.server.admin_listen + "'");
  int admin_bound = d.admin.bind(admin_host, admin_port);
  if (admin_bound < 0) throw std::runtime_error("cannot listen on " + s.server.admin_listen);
  d.admin_addr = admin_host + ":" + std::to_string(admin_bound);

  admin_hooks hooks;
  hooks.before_scrape = [&d] {
    cache_stats st = collect_stats(d.system, d.cache_shards);
    auto& m = d.metrics;
    m.cache_entries.Add({}).Set(static_cast<double>(st.entries));
    m.cache_bytes.Add({{"kind", "answers"}}).Set(static_cast<double>(st.bytes));
    m.cache_bytes.Add({{"kind", "semantic_index"}}).Set(static_cast<double>(st.semantic_bytes));
    m.cache_semantic_entries.Add({}).Set(static_cast<double>(st.semantic_entries));
    m.cache_semantic_namespaces.Add({}).Set(static_cast<double>(st.namespaces));
    m.cache_evictions.Add({}).Set(static_cast<double>(st.evictions));
    m.cache_expirations.Add({}).Set(static_cast<double>(st.expirations));
    m.cache_semantic_skipped.Add({{"op", "search"}})
        .Set(static_cast<double>(st.semantic_skipped_searches));
    m.cache_semantic_skipped.Add({{"op", "insert"}})
        .Set(static_cast<double>(st.semantic_skipped_inserts));
    m.records_behind.Add({}).Set(static_cast<double>(d.pipeline->accounts.records_behind->load()));
    const memory::stats mem = memory::read_stats();
    m.allocator_bytes.Add({{"kind", "slabs"}}).Set(static_cast<double>(mem.slab_bytes));
    m.allocator_bytes.Add({{"kind", "central_free"}}).Set(static_cast<double>(mem.central_bytes));
    if (const auto& board = d.pipeline->routing.board) {
      for (const auto& [model, entry] : d.pipeline->models) {
        for (const auto& e : entry.endpoints) {
          const actors::endpoint_live& live = board->live[e.endpoint];
          const auto snap = live.health.load();
          const prometheus::Labels labels{{"model", model}, {"provider", e.provider}};
          m.endpoint_health_score.Add(labels).Set(snap->score);
          m.endpoint_breaker_state.Add(labels).Set(
              snap->breaker == routing::breaker_state::closed      ? 0
              : snap->breaker == routing::breaker_state::half_open ? 1
                                                                   : 2);
          m.endpoint_in_flight.Add(labels).Set(live.in_flight.load(std::memory_order_relaxed));
        }
      }
    }
  };
  d.admin_deps.system = &d.system;
  d.admin_deps.directory = d.directory;
  d.admin_deps.accounts = d.accounts;
  d.admin_deps.ledger = d.ledger;
  d.admin_deps.audit = d.audit;
  for (const auto& [model, entry] : d.pipeline->models)
    for (const auto& route : entry.endpoints)
      d.admin_deps.config_prices.push_back(actors::list_price(route, model));
  if (!s.admin.token_env.empty()) {
    const char* token = std::getenv(s.admin.token_env.c_str());
    if (token != nullptr && *token != '\0')
      d.admin_deps.bootstrap_hash = accounts::secret_hash(token);
  }
  if (d.admin_deps.bootstrap_hash.empty() && d.directory->get()->admin_tokens.empty()) {
    log::warn("admin_api_open", {{"admin", s.server.admin_listen},
                                 {"why", "no admin token exists and $" + s.admin.token_env +
                                             " is unset: anyone who reaches the admin port is "
                                             "owner"}});
  }
  if (!d.cache_shards.empty()) {
    d.admin_deps.cache_stats = [&d] {
      cache_stats st = collect_stats(d.system, d.cache_shards);
      return "{\"shards\":" + std::to_string(d.cache_shards.size()) +
             ",\"entries\":" + std::to_string(st.entries) +
             ",\"bytes\":" + std::to_string(st.bytes) +
             ",\"semantic_entries\":" + std::to_string(st.semantic_entries) +
             ",\"semantic_bytes\":" + std::to_string(st.semantic_bytes) +
             ",\"namespaces\":" + std::to_string(st.namespaces) +
             ",\"evictions\":" + std::to_string(st.evictions) +
             ",\"expirations\":" + std::to_string(st.expirations) +
             ",\"semantic_skipped_searches\":" + std::to_string(st.semantic_skipped_searches) +
             ",\"semantic_skipped_inserts\":" + std::to_string(st.semantic_skipped_inserts) + "}";
    };
    d.admin_deps.cache_invalidate = [&d](const std::string& body) {
      return invalidate(d.system, d.cache_shards, body);
    };
  }
  if (s.debug.fault_injection) {
    log::warn("fault_injection_enabled", {{"why", "debug.fault_injection = true"}});
    d.admin_deps.debug_faults = [db = d.db](const std::string& body) {
      return set_faults(*db, body);
    };
  }
  hooks.api = [&d](const admin_call& c) { return handle_admin(d.admin_deps, c); };
  d.admin.set_hooks(std::move(hooks));
  d.admin.start();
  for (auto& l : d.loops) l->start();
  d.started = true;
  log::info(
      "node_started",
      {{"node_id", s.node_id}, {"data", d.data_addr}, {"admin", d.admin_addr}, {"io_threads", n}});
}

void gateway::shutdown() {
  auto& d = *impl_;
  if (!d.started || d.stopped) return;
  d.stopped = true;
  log::info("node_draining", {{"grace_ms", d.settings.server.shutdown_grace_ms}});
  // The health actors probe through the first loop: they stop before the loops close (the
  // published health stays as it is for the requests still draining).
  for (auto& h : d.health) caf::anon_send_exit(h, caf::exit_reason::user_shutdown);
  d.health.clear();
  std::mutex mx;
  std::condition_variable cv;
  std::size_t drained = 0;
  for (auto& l : d.loops) {
    l->shutdown(d.settings.server.shutdown_grace_ms, [&] {
      std::lock_guard<std::mutex> lock(mx);
      ++drained;
      cv.notify_all();
    });
  }
  {
    std::unique_lock<std::mutex> lock(mx);
    cv.wait(lock, [&] { return drained == d.loops.size(); });
  }
  for (auto& l : d.loops) l->join();
  d.admin.stop();
  // The loops' last outcomes are settled (and their usage sent to the ledger) before the
  // ledger's last write.
  if (auto settling = d.pipeline->accounts.settling) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (settling->load() > 0 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  d.stop_actors();
  log::info("node_stopped");
  // The actor system's destructor waits for the last connection actors to settle and quit.
}

std::string gateway::data_address() const {
  return impl_->data_addr;
}
std::string gateway::admin_address() const {
  return impl_->admin_addr;
}

}  // namespace tc::node
