#include "actors/connection.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <mutex>
#include <utility>

#include "actors/batcher.hpp"
#include "actors/dedup_table.hpp"
#include "actors/tenant_quota.hpp"
#include "protocol/accounts/json.hpp"
#include "protocol/canonical/template.hpp"
#include "protocol/openai/stream.hpp"
#include "protocol/openai/text.hpp"
#include "protocol/scheduling/prompt_array.hpp"

namespace tc::actors {

namespace {

using self_ptr = caf::stateful_actor<connection_state>*;

uint64_t now_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

bool pick_model(connection_state& st, openai::api_error& error);

/// Step 3, which model: an alias's, a group's member (by weight, the same for the same user) or
/// the auto model's pick. The request is then served, billed and cached as that model. False
/// (with `error`) when the auto model has nothing that fits.
bool resolve_model(connection_state& st, openai::api_error& error) {
  openai::request& req = st.req;
  const std::string asked = req.model;
  if (!pick_model(st, error)) return false;
  // The body says the model that serves it (what the upstream, the cache key and the answer's
  // `model` see).
  if (req.model != asked) req.body = openai::with_model(req.body, req.model);
  return true;
}

/// resolve_model's choice, into st.req.model.
bool pick_model(connection_state& st, openai::api_error& error) {
  const pipeline& ctx = *st.ctx;
  openai::request& req = st.req;
  if (auto a = ctx.aliases.find(req.model); a != ctx.aliases.end()) {
    req.model = a->second;
    return true;
  }
  if (auto g = ctx.groups.find(req.model); g != ctx.groups.end()) {
    const model_group& group = g->second;
    std::vector<uint32_t> weights = group.weights;
    if (auto sp = st.dir->splits.find(req.model); sp != st.dir->splits.end()) {
      uint64_t total = 0;
      for (size_t i = 0; i < group.members.size(); ++i) {
        auto w = sp->second.weights.find(group.members[i]);
        weights[i] = w == sp->second.weights.end() ? 0 : w->second;
        total += weights[i];
      }
      if (total == 0) weights = group.weights;  // stored for members the config no longer has
    }
    // Sticky per user: the request's `user` within its tenant, else its key, else its tenant.
    std::string sticky;
    if (!req.user.empty())
      sticky = "u:" + st.tenant + ":" + req.user;
    else if (st.caller != nullptr)
      sticky = "k:" + st.caller->id;
    else
      sticky = "t:" + st.tenant;
    req.model = group.members[routing::pick_sticky(sticky, weights)];
    return true;
  }
  if (!ctx.auto_model.name.empty() && req.model == ctx.auto_model.name &&
      req.kind == openai::endpoint::chat_completions) {
    const routing::request_features f = routing::features_of(
        openai::input_texts(req.kind, req.body), req.max_tokens, req.has_tools, req.message_count);
    const routing::weight_class c = routing::classify(f, ctx.auto_model.thresholds);
    std::optional<size_t> pick = routing::pick_auto(ctx.auto_model.choices, f, c);
    if (!pick) {
      error = openai::invalid_request("The model '" + req.model + "' has no " +
                                          std::string(routing::to_string(c)) +
                                          " model whose context window holds this request.",
                                      "model");
      return false;
    }
    req.model = ctx.auto_model.choices[*pick].name;
  }
  return true;
}

/// Whether `r` can answer a request of `kind`: an anthropic endpoint only chat.
bool serves(const model_route& r, openai::endpoint kind) {
  return !r.anthropic || kind == openai::endpoint::chat_completions;
}

/// Step 3: the model exists and serves this endpoint.
const model_entry* validate(const pipeline& ctx, openai::request& req, openai::api_error& error) {
  auto it = ctx.models.find(req.model);
  if (it == ctx.models.end()) {
    error = openai::model_not_found(req.model);
    return nullptr;
  }
  const bool wants_embedding = req.kind == openai::endpoint::embeddings;
  const auto& eps = it->second.endpoints;
  if (eps.front().embedding != wants_embedding ||
      std::none_of(eps.begin(), eps.end(),
                   [&](const model_route& r) { return serves(r, req.kind); })) {
    error = openai::invalid_request("The model '" + req.model + "' does not support " +
                                        std::string(openai::path_of(req.kind)) + ".",
                                    "model");
    return nullptr;
  }
  return &it->second;
}

/// Whether a request fits its model's context window without counting its tokens: not a chat, no
/// window, or its bytes (times the counter's max_tokens_per_byte) cannot exceed it.
bool surely_fits(const model_entry& m, const openai::request& req) {
  if (req.kind != openai::endpoint::chat_completions || m.context_window == 0) return true;
  const scheduling::token_counter& count = m.counter ? *m.counter : scheduling::default_counter();
  const uint64_t most =
      req.body.size() * count.max_tokens_per_byte() + req.max_tokens + 64;  // 64: framing, priming
  return most <= m.context_window;
}

/// Step 3, context-length protection of a chat request: false (with `error`) when it does not
/// fit under reject, or not even truncated; a truncated body replaces the request's. A body
/// that surely_fits is not parsed again. Counts are exact when the model has a tokenizer_file.
bool protect_context(connection_state& st, openai::api_error& error) {
  const model_entry& m = *st.model;
  if (surely_fits(m, st.req)) return true;
  const scheduling::token_counter& count = m.counter ? *m.counter : scheduling::default_counter();
  scheduling::context_result r = scheduling::protect_context(
      st.req.body, m.context_window, st.req.max_tokens, m.context_mode, count);
  if (!r.fits) {
    error = openai::context_length_exceeded(m.context_window, r.prompt_tokens, st.req.max_tokens);
    return false;
  }
  if (r.changed) st.req.body = std::move(r.body);
  return true;
}

/// The guard of a query as a digest: equal guards, equal text.
std::string guard_text(std::string_view query) {
  canonical::guard g = canonical::make_guard(query);
  canonical::hasher h;
  h.add("guard").add(uint64_t{g.negated});
  for (const auto& s : g.slots) h.add(uint64_t{static_cast<uint8_t>(s.kind)}).add(s.value);
  h.add("entities");
  for (const auto& e : g.entities) h.add(e);
  return h.finish().hex();
}

std::string_view endpoint_name(openai::endpoint kind) {
  switch (kind) {
    case openai::endpoint::chat_completions:
      return "chat";
    case openai::endpoint::completions:
      return "completions";
    case openai::endpoint::embeddings:
      return "embeddings";
  }
  return "chat";
}

/// "sk-tc-AbCdEf…" style, for messages: never the whole secret.
std::string masked(std::string_view secret) {
  if (secret.size() <= 10) return "****";
  return std::string(secret.substr(0, 8)) + "****" + std::string(secret.substr(secret.size() - 2));
}

/// The price of a route, with a price stored through the admin API winning over the list price.
accounts::price price_of(const directory& dir, const model_route& r, const std::string& model) {
  auto it = dir.prices.find(r.provider + "/" + model);
  return it != dir.prices.end() ? it->second : list_price(r, model);
}

/// A price per 1M tokens times tokens is the cost in micro-units of the price's currency.
int64_t cost_of(const accounts::price& p, uint64_t prompt, uint64_t cached, uint64_t completion) {
  const uint64_t uncached = prompt > cached ? prompt - cached : 0;
  return static_cast<int64_t>(std::llround(p.input_per_m * static_cast<double>(uncached) +
                                           p.cached_input_per_m * static_cast<double>(cached) +
                                           p.output_per_m * static_cast<double>(completion)));
}

/// `micros` of `from` currency in the tenant's currency, times its price factor.
int64_t charge_of(const account_plan& plan, const accounts::tenant* t, int64_t micros,
                  const std::string& from) {
  double v = static_cast<double>(micros);
  const std::string& to = t != nullptr ? t->currency : from;
  if (from == "USD" && to == "CNY") v *= plan.cny_per_usd;
  if (from == "CNY" && to == "USD") v /= plan.cny_per_usd;
  if (t != nullptr) v *= t->price_factor;
  return static_cast<int64_t>(std::llround(v));
}

/// Step 2's scopes: the tenant, the project, the key and the tenant's model limit (the first
/// glob that matches), each with its limits now.
std::vector<quota_scope> scopes_of(const connection_state& st) {
  std::vector<quota_scope> scopes;
  const accounts::tenant* t = st.dir->tenant(st.tenant);
  scopes.push_back({"t:" + st.tenant, t != nullptr ? t->limit : accounts::limits{}});
  if (st.caller != nullptr) {
    if (!st.caller->project.empty()) {
      const accounts::project* p = st.dir->project(st.caller->tenant, st.caller->project);
      if (p != nullptr) scopes.push_back({"p:" + st.tenant + "/" + p->id, p->limit});
    }
    scopes.push_back({"k:" + st.caller->id, st.caller->limit});
  }
  if (t != nullptr) {
    for (const auto& [glob, l] : t->model_limits) {
      if (accounts::glob_match(glob, st.req.model)) {
        scopes.push_back({"m:" + st.tenant + "/" + glob, l});
        break;
      }
    }
  }
  return scopes;
}

/// Whether step 5 keys `req` at all: embeddings are deterministic; chat and completions only at
/// temperature 0 or with a seed, unless the model caches the others (`nondeterministic_ok`).
/// Decided before a key is made: most traffic is not keyed.
bool keyable(const openai::request& req, bool nondeterministic_ok) {
  return req.kind == openai::endpoint::embeddings || nondeterministic_ok ||
         canonical::deterministic(req);
}

/// Step 5: the request's keys, and whether steps 6 and 13 apply to it.
/// Returns true if the cache may answer it (step 6).
bool canonicalize(connection_state& st) {
  const cache_plan& cache = st.ctx->cache;
  const model_route& r = *st.route;
  if (!cache.enabled || !r.cache || cache.shards.empty()) return false;
  if (!keyable(st.req, r.cache_nondeterministic)) return false;
  const bool embeddings = st.req.kind == openai::endpoint::embeddings;
  std::string error;
  if (!canonical::make_key(st.req, st.scope, r.version, st.key, error)) return false;
  st.exact_key = st.key.full_hash;
  st.store = !st.meta.no_store;
  const bool query_tiers = !embeddings && !st.key.query_text.empty() &&
                           (st.key.single_turn || cache.semantic_multi_turn);
  st.query_tiers = query_tiers && (cache.template_tier || cache.semantic_tier);
  return !st.meta.no_cache;
}

/// The template key and the semantic guard, computed only once the exact tier has missed
/// (an exact hit never needs them).
void prepare_query_tiers(connection_state& st) {
  if (!st.query_tiers || !st.ns.empty()) return;
  const cache_plan& cache = st.ctx->cache;
  // With history, the history must match exactly: it joins the namespace.
  st.ns = st.key.single_turn
              ? st.key.namespace_hash
              : canonical::hasher{}.add(st.key.namespace_hash).add(st.key.history_hash).finish();
  if (cache.template_tier) {
    canonical::templated t = canonical::make_template(st.key.query_text);
    canonical::hasher h;
    h.add("template").add(st.ns).add(t.text);
    for (const auto& s : t.slots) h.add(uint64_t{static_cast<uint8_t>(s.kind)}).add(s.value);
    st.template_key = h.finish();
  }
  if (cache.semantic_tier) st.guard = guard_text(st.key.query_text);
}

/// The prompt's prefix hash (system block and tools); computed here when step 5 did not.
canonical::digest prefix_of(connection_state& st) {
  if (st.key.prefix_hash.empty()) {
    std::string error;
    canonical::key k;
    if (canonical::make_key(st.req, st.scope, st.route->version, k, error))
      st.key.prefix_hash = k.prefix_hash;
  }
  return st.key.prefix_hash;
}

std::vector<uint32_t> loads_of(const std::vector<routing::candidate>& cands) {
  std::vector<uint32_t> loads;
  loads.reserve(cands.size());
  for (const auto& c : cands) loads.push_back(c.in_flight);
  return loads;
}

/// The data-residency rule of the request's tenant (empty: none).
routing::residency residency_of(const connection_state& st) {
  routing::residency rule;
  if (const accounts::tenant* t = st.dir->tenant(st.tenant)) {
    rule.regions = t->residency_regions;
    rule.required_tags = t->residency_tags;
  }
  return rule;
}

/// Whether `r` may serve a tenant with `rule`.
bool resident(const routing::residency& rule, const model_route& r) {
  if (rule.regions.empty() && rule.required_tags.empty()) return true;
  routing::candidate c;
  c.region = r.region;
  c.tags = r.tags;
  return routing::resident(c, rule);
}

/// Step 3: refused (403) when no endpoint of the model that serves the request satisfies the
/// tenant's residency rule.
bool check_residency(const connection_state& st, openai::api_error& error) {
  const routing::residency rule = residency_of(st);
  for (const model_route& r : st.model->endpoints)
    if (resident(rule, r) && serves(r, st.req.kind)) return true;
  error = openai::permission_denied("No endpoint of the model '" + st.req.model +
                                        "' satisfies your tenant's data-residency rule (its "
                                        "regions and tags).",
                                    "model");
  return false;
}

/// Step 9: the model's endpoints in the order to try (all of them: the batcher grants the first
/// with capacity; the plan keeps routing.max_attempts). Only endpoints that satisfy the tenant's
/// data-residency rule are listed: empty when none does. One endpoint is simply called;
/// several are ranked by live health, price (in CNY), load and the policy. The first must be
/// takeable now: a half-open endpoint only with a probe slot, else it waits at the back of the
/// list with the unavailable ones.
std::vector<const model_route*> rank_endpoints(connection_state& st) {
  const std::vector<model_route>& eps = st.model->endpoints;
  const routing_plan& rp = st.ctx->routing;
  std::vector<const model_route*> out;
  // The tenant's data-residency rule, whatever the policy: a non-resident endpoint is never
  // tried (compliance_first also ranks by it, with its own weights).
  const routing::residency rule = residency_of(st);
  auto allowed = [&](const model_route& r) { return resident(rule, r) && serves(r, st.req.kind); };
  if (eps.size() == 1 || !rp.board) {
    for (const model_route& r : eps)
      if (allowed(r)) out.push_back(&r);
    return out;
  }
  const int64_t now = health_now_ms();
  std::vector<routing::candidate> cands(eps.size());
  for (size_t i = 0; i < eps.size(); ++i) {
    const model_route& r = eps[i];
    const endpoint_live& live = rp.board->live[r.endpoint];
    routing::candidate& c = cands[i];
    c.endpoint = r.provider + "/" + r.upstream_model;
    c.region = r.region;
    c.tags = r.tags;
    const accounts::price price = price_of(*st.dir, r, st.req.model);
    const double to_cny = price.currency == "USD" ? st.ctx->accounts.cny_per_usd : 1.0;
    c.price_in_per_m = price.input_per_m * to_cny;
    c.price_out_per_m = price.output_per_m * to_cny;
    c.in_flight = live.in_flight.load(std::memory_order_relaxed);
    c.max_concurrency = r.max_concurrency;
    c.health = *live.health.load();
    c.weight = r.weight;
  }
  const double in_tokens = static_cast<double>(st.req.input_chars) / 3.0;
  const double out_tokens = st.req.max_tokens != 0 ? st.req.max_tokens : 256.0;
  std::vector<size_t> order =
      routing::rank(cands, rp.policy, rp.weights, rule, in_tokens, out_tokens);
  std::erase_if(order, [&](size_t i) { return !allowed(eps[i]); });
  if (st.model->ring) {
    // Replicas: the prompt's prefix picks one (bounded loads over requests in flight), ahead
    // of the ranking unless its breaker is open or it is in Retry-After.
    const size_t pick =
        st.model->ring->pick(prefix_of(st).hi, loads_of(cands), rp.affinity_load_factor);
    auto it = std::find(order.begin(), order.end(), pick);
    if (it != order.end() && cands[pick].health.available &&
        cands[pick].health.breaker == routing::breaker_state::closed &&
        cands[pick].health.retry_after_until_ms <= now)
      std::rotate(order.begin(), it, it + 1);
  }
  std::vector<const model_route*> later;  // passed over as the first: no probe slot, or open
  for (size_t i : order) {
    const model_route* r = &eps[i];
    if (out.empty() && !take_endpoint(rp.board->live[r->endpoint], now))
      later.push_back(r);
    else
      out.push_back(r);
  }
  out.insert(out.end(), later.begin(), later.end());
  return out;
}

/// Where `r` is called for a request of `kind`.
std::string url_of(const model_route& r, openai::endpoint kind) {
  if (r.anthropic) return r.base_url + "/messages";                  // chat only (see serves())
  return r.base_url + std::string(openai::path_of(kind)).substr(3);  // drop "/v1"
}

/// Step 9: the upstream call to `order[0]`, then the others in order if one fails before the
/// client got a byte.
upstream_plan route(const std::vector<const model_route*>& order, openai::request& req,
                    reply_target to) {
  const model_route& r = *order.front();
  upstream_plan plan;
  plan.to = to;
  plan.provider = r.provider;
  plan.endpoint = r.endpoint;
  plan.endpoint_index = static_cast<uint16_t>(r.index);
  plan.model = req.model;
  plan.url = url_of(r, req.kind);
  plan.upstream_model = r.upstream_model;
  plan.body = r.upstream_model == req.model ? std::move(req.body)
                                            : openai::with_model(req.body, r.upstream_model);
  plan.stream = req.stream;
  plan.connect_timeout_ms = r.connect_timeout_ms;
  plan.first_byte_timeout_ms = r.first_byte_timeout_ms;
  plan.total_timeout_ms = r.total_timeout_ms;
  for (size_t i = 1; i < order.size(); ++i) {
    const model_route& f = *order[i];
    upstream_attempt a;
    a.provider = f.provider;
    a.endpoint = f.endpoint;
    a.index = static_cast<uint16_t>(f.index);
    a.url = url_of(f, req.kind);
    a.upstream_model = f.upstream_model;
    a.connect_timeout_ms = f.connect_timeout_ms;
    a.first_byte_timeout_ms = f.first_byte_timeout_ms;
    a.total_timeout_ms = f.total_timeout_ms;
    plan.fallbacks.push_back(std::move(a));
  }
  return plan;
}

void end_request(connection_state& st) {
  st.req = openai::request{};
  st.meta = request_meta{};
  st.model = nullptr;
  st.route = nullptr;
  st.key = canonical::key{};
  st.exact_key = {};
  st.ns = {};
  st.template_key = {};
  st.guard.clear();
  st.embedding.clear();
  st.store = false;
  st.query_tiers = false;
  st.from_cache = false;
  st.leading = false;
  st.rechecking = false;
  st.early_attaches.clear();
  st.following = false;
  st.live = false;
  st.deduped = false;
  st.lookup_start_ns = 0;
  st.dir.reset();
  st.caller = nullptr;
  st.tenant.clear();
  st.scope.clear();
  st.ticket = 0;
  st.priority = 2;
  st.scheduled = false;
  st.direct_slot = -1;
  st.direct_p0 = false;
  st.queued = false;
  st.client_gone = false;
  st.sched_tokens = 0;
  st.rate = rate_headers{};
  st.received_ms = 0;
  st.input_verdicts.clear();
  st.input_text.clear();
  st.ack_ledger = false;
  st.ack_audit = false;
  st.mod_rules.reset();
  st.mod_texts.clear();
  st.mod = moderation_result{};
  st.mod_engines.clear();
  st.mod_waiting = 0;
}

void lookup_exact(self_ptr self);
void lookup_pointers(self_ptr self);
void probe_pointers(self_ptr self);
void fetch_pointed(self_ptr self, const cache_hit& pointer);
void serve_hit(self_ptr self, cache_hit& hit);
void dispatch(self_ptr self);
void recheck(self_ptr self);
void lead_after_recheck(self_ptr self);
void store_then_close(self_ptr self, cache_entry&& e, dedup_result&& result);
void schedule(self_ptr self);
void call_upstream(self_ptr self, std::vector<const model_route*> order, int64_t queue_ms,
                   sched_grant* merged = nullptr);

const cache_shard_actor& owner(const connection_state& st, const canonical::digest& key) {
  const auto& shards = st.ctx->cache.shards;
  return shards[shard_of(key, static_cast<uint32_t>(shards.size()))];
}

/// The table of the shard that owns `key` when the shards are this node's (the I/O loops' lane
/// reads it, connection actors read its semantic budget); nullptr otherwise.
shared_cache_store* local_table(const cache_plan& cache, const canonical::digest& key) {
  if (cache.stores.empty() || cache.stores.size() != cache.shards.size()) return nullptr;
  return cache.stores[shard_of(key, static_cast<uint32_t>(cache.stores.size()))].get();
}

/// The dedup_table that owns the request's key (sharded like the cache).
const caf::actor& dedup_owner(const connection_state& st) {
  const auto& tables = st.ctx->cache.dedup_tables;
  return tables[shard_of(st.exact_key, static_cast<uint32_t>(tables.size()))];
}

/// How long to wait for a shard or table. A local one always answers (or, if it is gone, CAF
/// answers with an error at once), so no timeout is armed: each armed timeout wakes CAF 0.17's
/// clock thread, measured as a context switch per request on the cache-hit path. Remote ones
/// (cluster) get cache.lookup_timeout_ms.
template <class Handle>
caf::duration lookup_timeout(self_ptr self, const Handle& target) {
  if (target.node() == self->node()) return caf::infinite;
  return caf::duration{std::chrono::milliseconds(self->state.ctx->cache.lookup_timeout_ms)};
}

void audit_refusal(self_ptr self, int status);
void record_messages(connection_state& st, billing::usage_record&& rec,
                     const request_outcome& outcome,
                     std::vector<std::pair<caf::actor, caf::message>>& out);

/// The tenant_quota shard that owns the request's tenant.
const caf::actor& quota_owner(const connection_state& st);

/// Ends a request with an error before anything was called upstream: a reservation made is
/// given back, and the refusal is audited.
void refuse(self_ptr self, openai::api_error&& error) {
  auto& st = self->state;
  if (st.ticket != 0)
    self->send(quota_owner(st), quota_settle_atom::value, st.ticket, uint64_t{0}, int64_t{0});
  if (st.leading) {  // refused at step 8: the requests that joined it hear the same
    dedup_result r;
    r.key = st.exact_key;
    r.status = error.status;
    r.body = openai::error_body(error);
    self->send(dedup_owner(st), dedup_done_atom::value, std::move(r));
  }
  audit_refusal(self, error.status);
  st.ctx->ports.at(st.to.loop)->reject(st.to, std::move(error), st.rate);
  end_request(st);
}

/// The most completion tokens a request may take (256 when it sets no max_tokens).
uint64_t max_completion(const openai::request& req) {
  if (req.kind == openai::endpoint::embeddings) return 0;
  return req.max_tokens != 0 ? req.max_tokens : 256;
}

/// The tenant_quota shard that owns the request's tenant.
const caf::actor& quota_owner(const connection_state& st) {
  const auto& shards = st.ctx->accounts.quota;
  return shards[tenant_shard(st.tenant, shards.size())];
}

void admit(self_ptr self);
void after_admission(self_ptr self);

/// The cache scope of tenant `t` (null: a tenant with no record): its own, or its declared
/// shared scope, followed by its data-residency rule if it has one. A tenant's answers come from
/// endpoints its rule allows, so an answer stored under a rule is served only under that rule:
/// a shared scope is shared only between tenants with the same rule, and a tenant whose rule
/// changes does not get the answers made under the old one. The rule's regions and tags are
/// written sorted and length-prefixed after a '|' (which no tenant id or scope name contains).
std::string cache_scope_of(const accounts::tenant* t, const std::string& tenant) {
  if (t == nullptr) return "tenant:" + tenant;
  std::string scope = t->cache_scope.empty() ? "tenant:" + tenant : "shared:" + t->cache_scope;
  auto append = [&scope](const char* name, std::vector<std::string> items) {
    if (items.empty()) return;
    std::sort(items.begin(), items.end());
    items.erase(std::unique(items.begin(), items.end()), items.end());
    scope += name;
    for (const std::string& item : items) {
      scope += std::to_string(item.size());
      scope += ':';
      scope += item;
    }
  };
  append("|regions=", t->residency_regions);
  append("|tags=", t->residency_tags);
  return scope;
}

/// What step 1's caller decides for the rest: the cache scope (cache_scope_of) and the priority
/// (the key's, or what x-tc-priority may make of it).
void take_caller(connection_state& st) {
  const accounts::tenant* t = st.dir->tenant(st.tenant);
  st.scope = cache_scope_of(t, st.tenant);
  st.priority =
      accounts::request_priority(st.caller, t != nullptr ? t->priority : 2, st.meta.priority);
}

/// Steps 1-6 for one request; steps 2 and 6 continue asynchronously when an actor is asked.
void run(self_ptr self) {
  auto& st = self->state;
  st.received_ms = unix_ms();
  if (st.ctx->compliance.audit) st.input_text = st.req.body;  // the body goes upstream
  // 1 auth          the caller's key (or the anonymous tenant), its endpoint and models
  st.dir = st.ctx->accounts.directory->get();
  openai::api_error error;
  if (!authenticate(st.ctx->accounts, *st.dir, st.meta.api_key, endpoint_name(st.req.kind),
                    st.req.model, st.received_ms / 1000, st.caller, st.tenant, error))
    return refuse(self, std::move(error));
  take_caller(st);
  // 3 validate      which model (alias, group member, auto pick), known and serving this
  //                 endpoint, with an endpoint the tenant's residency rule allows; context
  //                 length (before 2: the reservation is priced by the model)
  if (!resolve_model(st, error)) return refuse(self, std::move(error));
  st.model = validate(*st.ctx, st.req, error);
  if (st.model == nullptr) return refuse(self, std::move(error));
  st.route = &st.model->endpoints.front();
  if (!check_residency(st, error)) return refuse(self, std::move(error));
  if (!protect_context(st, error)) return refuse(self, std::move(error));
  // 2 admission     every scope's limits checked and reserved in one step at the owner
  admit(self);
}

/// The most tokens a request may use, estimated before it runs (quota reservations, step 8's
/// token buckets): the input at ~3 characters a token (over-counts English, the safe side),
/// plus the most the answer may take.
uint64_t estimate_tokens(const openai::request& req) {
  return req.input_chars / 3 + 1 + max_completion(req);
}

void admit(self_ptr self) {
  auto& st = self->state;
  std::vector<quota_scope> scopes = scopes_of(st);
  const account_plan& plan = st.ctx->accounts;
  if (const uint8_t health = plan.store_health->load(std::memory_order_relaxed);
      health != store_ok && plan.ledger) {
    // Usage cannot be written: closed refuses what would be billed; open serves under strict
    // fallback limits while the records wait in memory (up to a bound, never dropped).
    if (!plan.fail_open || health == store_full) {
      return refuse(self, openai::service_unavailable(
                              "Usage cannot be recorded right now (the node's store is failing); "
                              "retry shortly.",
                              1));
    }
    quota_scope fallback;
    fallback.id = "f:" + st.tenant;
    fallback.limit = plan.fallback;
    scopes.push_back(std::move(fallback));
  }
  bool limited = false;
  for (const auto& sc : scopes) limited = limited || !sc.limit.empty();
  if (!limited || st.ctx->accounts.quota.empty()) return after_admission(self);
  quota_ask ask;
  ask.scopes = std::move(scopes);
  // Reserved from an estimate, settled to the actual usage.
  const uint64_t completion = max_completion(st.req);
  ask.tokens = estimate_tokens(st.req);
  // Priced at the dearest endpoint: any of them may serve it (failover).
  int64_t most = 0;
  for (const model_route& r : st.model->endpoints) {
    const accounts::price price = price_of(*st.dir, r, st.req.model);
    most = std::max(
        most, charge_of(st.ctx->accounts, st.dir->tenant(st.tenant),
                        cost_of(price, ask.tokens - completion, 0, completion), price.currency));
  }
  ask.cost_micros = most;
  const auto& shard = quota_owner(st);
  self->request(shard, lookup_timeout(self, shard), std::move(ask))
      .then(
          [self](quota_verdict& v) {
            auto& st = self->state;
            st.rate.limit_requests = v.limit_requests;
            st.rate.remaining_requests = v.remaining_requests;
            st.rate.reset_requests_ms = v.reset_requests_ms;
            st.rate.limit_tokens = v.limit_tokens;
            st.rate.remaining_tokens = v.remaining_tokens;
            st.rate.reset_tokens_ms = v.reset_tokens_ms;
            if (!v.granted)
              return refuse(self, openai::rate_limited(std::move(v.code), std::move(v.message),
                                                       v.retry_after_s));
            st.ticket = v.ticket;
            after_admission(self);
          },
          [self](caf::error&) {
            // The owner of the tenant's counters is gone: refuse rather than admit unmetered.
            refuse(self, openai::service_unavailable(
                             "The quota service is unavailable; retry shortly.", 1));
          });
}

void after_input_moderation(self_ptr self);

/// Step 4's verdict: blocked requests are refused; mask findings are applied to the body that
/// goes upstream (and into the cache key).
void apply_input_verdict(self_ptr self) {
  auto& st = self->state;
  moderation_result& r = st.mod;
  finish_moderation(*st.mod_rules, r);
  st.input_verdicts = std::move(r.verdicts);
  if (r.blocked()) return refuse(self, openai::content_filtered(r.category));
  bool masked = false;
  for (const auto& m : r.masks) masked = masked || !m.empty();
  if (masked)
    st.req.body = openai::with_input_texts(st.req.kind, st.req.body, masked_texts(st.mod_texts, r));
  st.mod = moderation_result{};
  st.mod_texts.clear();
  st.mod_rules.reset();
  after_input_moderation(self);
}

/// Step 4: the request's text through the input engines: the local ones inline, the remote ones
/// as concurrent calls through the I/O loop (their answers continue the request).
void moderate_input(self_ptr self) {
  auto& st = self->state;
  st.mod_rules = st.ctx->compliance.moderation->get();
  const moderation_rules& rules = *st.mod_rules;
  if (!rules.input) return after_input_moderation(self);
  st.mod_texts = openai::input_texts(st.req.kind, st.req.body);
  st.mod = moderation_result{};
  moderate_local(rules, moderation_dir::input, st.mod_texts, st.mod);
  if (!rules.remote_input) return apply_input_verdict(self);
  ++st.mod_round;
  st.mod_engines.clear();
  st.mod_started_ns = now_ns();
  for (size_t i = 0; i < rules.engines.size(); ++i) {
    const moderation_engine& e = rules.engines[i];
    if (!e.remote() || !e.input) continue;
    side_call c;
    c.reply_to = caf::actor_cast<caf::actor>(self);
    c.id = (st.mod_round << 8) | st.mod_engines.size();
    c.url = e.url;
    c.headers = remote_headers(e);
    c.body = remote_body(e, moderation_dir::input, st.meta.request_id, st.tenant, st.req.model,
                         st.mod_texts);
    c.timeout_ms = e.timeout_ms;
    st.mod_engines.push_back(i);
    st.ctx->ports.at(st.to.loop)->call(std::move(c));
  }
  st.mod_waiting = st.mod_engines.size();
}

/// A remote input engine answered (or failed); the last one decides.
void on_side_answer(self_ptr self, side_answer& a) {
  auto& st = self->state;
  if (st.mod_waiting == 0 || (a.id >> 8) != st.mod_round) return;  // another check's
  const size_t call = a.id & 0xff;
  if (call >= st.mod_engines.size()) return;
  const moderation_engine& e = st.mod_rules->engines[st.mod_engines[call]];
  add_remote_verdict(e, a.status, a.body, a.failure, st.mod_texts,
                     static_cast<uint32_t>((now_ns() - st.mod_started_ns) / 1000), st.mod);
  if (--st.mod_waiting == 0) apply_input_verdict(self);
}

void after_admission(self_ptr self) {
  // 4 moderate in   every input engine at once (remote ones through the I/O loop); blocked:
  //                 400 content_filter, before any cache lookup or upstream call
  moderate_input(self);
}

void after_input_moderation(self_ptr self) {
  auto& st = self->state;
  // 5 canonicalize  full_hash, prefix_hash, namespace; whether the cache applies
  const bool lookup = canonicalize(st);
  // 6 cache         exact, then template and semantic: cache_shard lookups
  if (lookup) return lookup_exact(self);
  dispatch(self);
}

void lookup_exact(self_ptr self) {
  auto& st = self->state;
  st.lookup_start_ns = now_ns();
  const auto& shard = owner(st, st.exact_key);
  self->request(shard, lookup_timeout(self, shard), cache_get_atom::value, st.exact_key)
      .then(
          [self](cache_hit& hit) {
            if (hit.found) return serve_hit(self, hit);
            lookup_pointers(self);
          },
          [self](caf::error&) { dispatch(self); });  // a slow or lost shard is a miss
}

/// Whether the namespace's shard has spent its semantic budget for now, so it would skip a
/// search or insert anyway (a remote shard is not known: false). Counts the skip if so.
bool semantic_spent(const connection_state& st, bool insert) {
  shared_cache_store* t = local_table(st.ctx->cache, st.ns);
  if (t == nullptr || now_ns() >= t->semantic_spent_until_ns.load(std::memory_order_relaxed))
    return false;
  (insert ? t->skipped_inserts_early : t->skipped_searches_early)
      .fetch_add(1, std::memory_order_relaxed);
  return true;
}

/// Exact miss: the template and semantic pointers, in the shard that owns the namespace. The
/// query's embedding comes from the builtin embedder here, or from the embedder actor
/// (cache.embedder = "openai"), whose error only skips the semantic part of the probe. Neither
/// is asked while the shard's semantic budget is spent.
void lookup_pointers(self_ptr self) {
  auto& st = self->state;
  prepare_query_tiers(st);
  if (st.template_key.empty() && st.guard.empty()) return dispatch(self);
  if (!st.guard.empty() && semantic_spent(st, false)) return probe_pointers(self);
  if (!st.guard.empty() && st.ctx->cache.embedder) {
    // A local actor that always answers (its own call timeout): no armed timeout here.
    self->request(st.ctx->cache.embedder, caf::infinite, embed_ask{st.key.query_text})
        .then(
            [self](embed_answer& a) {
              self->state.embedding = std::move(a.embedding);  // empty on error
              probe_pointers(self);
            },
            [self](caf::error&) { probe_pointers(self); });
    return;
  }
  if (!st.guard.empty()) st.embedding = canonical::embed(st.key.query_text, st.ctx->cache.embed);
  probe_pointers(self);
}

/// The probe itself: the template key, and the embedding when there is one.
void probe_pointers(self_ptr self) {
  auto& st = self->state;
  cache_probe probe;
  probe.ns = st.ns;
  probe.template_key = st.template_key;
  if (!st.guard.empty() && !st.embedding.empty()) {
    probe.embedding = st.embedding;
    probe.guard = st.guard;
    probe.threshold = st.route->semantic_threshold;
  }
  if (probe.template_key.empty() && probe.embedding.empty()) return dispatch(self);
  const auto& shard = owner(st, st.ns);
  self->request(shard, lookup_timeout(self, shard), cache_find_atom::value, std::move(probe))
      .then(
          [self](cache_hit& pointer) {
            if (!pointer.found) return dispatch(self);
            fetch_pointed(self, pointer);
          },
          [self](caf::error&) { dispatch(self); });
}

/// A template or semantic pointer: the answer itself lives under its exact key.
void fetch_pointed(self_ptr self, const cache_hit& pointer) {
  auto& st = self->state;
  const auto& shard = owner(st, pointer.exact_key);
  self->request(shard, lookup_timeout(self, shard), cache_get_atom::value, pointer.exact_key)
      .then(
          [self, tier = pointer.tier, sim = pointer.similarity](cache_hit& hit) {
            if (!hit.found) return dispatch(self);  // the answer left before its pointer
            hit.tier = tier;
            hit.similarity = sim;
            serve_hit(self, hit);
          },
          [self](caf::error&) { dispatch(self); });
}

/// A stored or shared answer addressed to this request's client, in the form it asked for.
cached_reply reply_to_client(const connection_state& st, std::string body) {
  cached_reply reply;
  reply.to = st.to;
  reply.model = st.req.model;
  reply.body = std::move(body);
  reply.stream = st.req.stream;
  reply.include_usage = st.req.include_usage;
  reply.rate = st.rate;
  return reply;
}

/// Whether step 13 digests a request's texts itself (compliance_plan::audit_keeps_text): then a
/// stored answer keeps its digest, made once, for the hits that serve it as stored.
bool digests_answers(const pipeline& ctx) {
  return ctx.compliance.audit && !ctx.compliance.audit_keeps_text;
}

/// Gives a cached reply its stored answer's digest, if it was made by the audit writer's
/// algorithm (a cache_shard on another node may have stored it under another setting).
void add_body_digest(const connection_state& st, cached_reply& reply, std::string digest,
                     uint8_t algo) {
  if (digest.empty() || !digests_answers(*st.ctx) ||
      algo != static_cast<uint8_t>(st.ctx->compliance.audit_algo))
    return;
  reply.body_digest = std::move(digest);
  reply.body_digest_algo = algo;
}

/// The algorithm-filing ID of the request's answer: the tenant's own, else the model's.
std::string filing_of(const connection_state& st) {
  const accounts::tenant* t = st.dir->tenant(st.tenant);
  if (t != nullptr && !t->filing_id.empty()) return t->filing_id;
  return st.route->filing_id;
}

/// Whether step 13 sends the usage and audit records as one message to the audit writer.
bool records_together(const pipeline& ctx) {
  return ctx.accounts.ledger && ctx.compliance.audit && ctx.compliance.audit_carries_usage;
}

/// Which durable records a complete answer waits for (write-ahead): its usage record when it
/// is billed, and its audit record; both, once the writers are max_records_behind records
/// behind with records no answer waits for (back-pressure). Returns how many releases the I/O
/// loop waits for (one per writer that holds one of them).
uint8_t decide_acks(connection_state& st, bool billed) {
  const account_plan& a = st.ctx->accounts;
  const compliance_plan& c = st.ctx->compliance;
  const bool behind = a.records_behind->load(std::memory_order_relaxed) >= a.max_records_behind;
  st.ack_ledger = a.ledger && ((a.write_ahead && billed) || behind);
  st.ack_audit = c.audit && (c.audit_write_ahead || behind);
  if (!st.ack_ledger && !st.ack_audit) return 0;
  return records_together(*st.ctx) ? 1 : static_cast<uint8_t>(st.ack_ledger + st.ack_audit);
}

/// Step 6 or 7: an answer the request did not pay an upstream for goes to the client.
void serve(self_ptr self, cached_reply&& reply) {
  auto& st = self->state;
  reply.acks = decide_acks(st, st.ctx->accounts.cache_hit_charge > 0);
  reply.write_ahead = reply.acks != 0;
  reply.keep_output = static_cast<bool>(st.ctx->compliance.audit);
  reply.filing_id = filing_of(st);
  st.ctx->ports.at(st.to.loop)->serve(std::move(reply));
}

void serve_hit(self_ptr self, cache_hit& hit) {
  auto& st = self->state;
  st.from_cache = true;
  cached_reply reply = reply_to_client(st, std::move(hit.body));
  add_body_digest(st, reply, std::move(hit.body_digest), hit.body_digest_algo);
  switch (static_cast<cache_tier>(hit.tier)) {
    case cache_tier::exact:
      reply.tier = "exact";
      reply.cache_header = "hit-exact";
      break;
    case cache_tier::template_:
      reply.tier = "template";
      reply.cache_header = "hit-template";
      break;
    case cache_tier::semantic: {
      reply.tier = "semantic";
      char sim[32];
      std::snprintf(sim, sizeof sim, "%.2f", std::floor(hit.similarity * 100.0f) / 100.0f);
      reply.cache_header = std::string("hit-semantic;sim=") + sim;
      break;
    }
  }
  reply.prompt_tokens = hit.prompt_tokens;
  reply.completion_tokens = hit.completion_tokens;
  reply.saved_cost_micros = hit.cost_micros;
  reply.cache_lookup_ns = now_ns() - st.lookup_start_ns;
  serve(self, std::move(reply));
}

/// Step 7 for a request the cache did not answer: join an identical request in flight, or
/// lead it. Only cacheable requests coalesce: sharing one answer is what the cache does too.
void dispatch(self_ptr self) {
  auto& st = self->state;
  const auto& tables = st.ctx->cache.dedup_tables;
  if (!st.ctx->cache.dedup || tables.empty() || st.exact_key.empty()) return schedule(self);
  if (st.lookup_start_ns == 0) st.lookup_start_ns = now_ns();
  const auto& table = dedup_owner(st);
  self->request(table, lookup_timeout(self, table), dedup_join_atom::value, st.exact_key,
                caf::actor_cast<caf::actor>(self), st.req.stream)
      .then(
          [self](uint8_t role) {
            auto& st = self->state;
            switch (static_cast<dedup_role>(role)) {
              case dedup_role::follower:
                st.following = true;  // dedup_events / dedup_result come next
                return;
              case dedup_role::recheck:
                if (!st.meta.no_cache) return recheck(self);
                [[fallthrough]];  // it may not read the cache: lead
              case dedup_role::leader:
                break;
            }
            st.leading = true;
            schedule(self);
          },
          [self](caf::error&) { schedule(self); });  // a slow table: go alone
}

/// Made leader of a key whose answer was stored since this request's lookup: the answer is
/// looked up once more before an upstream call. A hit answers this request and every one that
/// joined it meanwhile; a miss (evicted, expired) leads as usual.
void recheck(self_ptr self) {
  auto& st = self->state;
  st.rechecking = true;
  const auto& shard = owner(st, st.exact_key);
  self->request(shard, lookup_timeout(self, shard), cache_get_atom::value, st.exact_key)
      .then(
          [self](cache_hit& hit) {
            auto& st = self->state;
            st.rechecking = false;
            if (!hit.found) return lead_after_recheck(self);
            st.early_attaches.clear();  // they get the answer below, as dedup_result
            dedup_result r{st.exact_key, 200, hit.body, hit.prompt_tokens, hit.completion_tokens};
            self->send(dedup_owner(st), dedup_done_atom::value, std::move(r));
            serve_hit(self, hit);
          },
          [self](caf::error&) {
            self->state.rechecking = false;
            lead_after_recheck(self);
          });
}

/// The recheck missed: lead, with the streaming followers that joined during it attached.
void lead_after_recheck(self_ptr self) {
  auto& st = self->state;
  st.leading = true;
  for (dedup_attach& a : st.early_attaches)
    st.ctx->ports.at(st.to.loop)->attach(st.to, std::move(a.follower), a.key);
  st.early_attaches.clear();
  schedule(self);
}

/// Step 13 for a leader whose answer the cache keeps: the entry in the dedup table closes once
/// the shard has stored the answer, so an identical request finds one or the other. A shard that
/// does not answer (a lost node) closes it all the same: the followers are never left waiting.
/// The reply may come while this pooled actor serves its next request: the handlers use only
/// what they captured.
void store_then_close(self_ptr self, cache_entry&& e, dedup_result&& result) {
  auto& st = self->state;
  const auto& shard = owner(st, st.exact_key);
  auto closing = std::make_shared<dedup_result>(std::move(result));
  const caf::actor table = dedup_owner(st);
  self->request(shard, lookup_timeout(self, shard), cache_store_atom::value, std::move(e))
      .then(
          [self, table, closing](bool stored) {
            self->send(table, dedup_done_atom::value, std::move(*closing), stored);
          },
          [self, table, closing](caf::error&) {
            self->send(table, dedup_done_atom::value, std::move(*closing), false);
          });
}

/// A follower's answer: the leader's, as JSON or a synthesized stream, or its error.
void serve_leader_result(self_ptr self, dedup_result& r) {
  auto& st = self->state;
  st.following = false;
  if (r.status == 0) {  // the leader was lost: go alone
    st.exact_key = {};  // and do not join again
    return schedule(self);
  }
  st.from_cache = true;
  st.deduped = true;
  cached_reply reply = reply_to_client(st, std::move(r.body));
  reply.status = r.status;
  reply.cache_header = "dedup";
  reply.tier = "dedup";
  reply.prompt_tokens = r.prompt_tokens;
  reply.completion_tokens = r.completion_tokens;
  reply.saved_cost_micros = static_cast<uint64_t>(
      cost_of(price_of(*st.dir, *st.route, st.req.model), r.prompt_tokens, 0, r.completion_tokens));
  reply.cache_lookup_ns = now_ns() - st.lookup_start_ns;
  serve(self, std::move(reply));
}

/// The "error" of a request whose client left before its upstream call: nobody reads it; the
/// status (nginx's 499) is what metrics and the audit record show.
openai::api_error client_left() {
  openai::api_error e;
  e.status = 499;
  e.type = "invalid_request_error";
  e.code = "client_closed_request";
  e.message = "The client closed the connection before the request was sent upstream.";
  return e;
}

/// Steps 8 and 9: the request waits in its model's batcher until one of its endpoints, in the
/// router's order, has capacity; without a batcher (scheduling off) it goes at once.
void schedule(self_ptr self) {
  auto& st = self->state;
  // 9 route (rank)  the model's endpoints ranked by live health, price, load and policy,
  //                 before step 8 because the batcher grants the first of them with capacity
  std::vector<const model_route*> ranked = rank_endpoints(st);
  if (ranked.empty()) {  // cannot happen: step 3 checked the rule against the same tables
    openai::api_error error;
    check_residency(st, error);
    return refuse(self, std::move(error));
  }
  // 8 schedule      held in the model's priority queue (P0 strict, token round-robin over
  //                 P1-P4 and tenants, aging) until an endpoint has a free slot and tokens;
  //                 a full queue or a wait past the timeout: 503 with Retry-After
  if (!st.model->batcher) return call_upstream(self, std::move(ranked), -1);
  // Nobody to answer: no queue place (a dedup leader goes on: its followers wait for it).
  if (st.client_gone && !st.leading) return refuse(self, client_left());
  std::vector<uint16_t> order;
  order.reserve(ranked.size());
  for (const model_route* r : ranked) order.push_back(static_cast<uint16_t>(r->index));
  if (st.model->gate) {
    // Nothing held and a slot free: the request takes it without asking (batcher_gate), where
    // the batcher would have granted it at once.
    const int at = st.model->gate->try_direct(order, st.priority);
    if (at >= 0) {
      st.scheduled = true;
      st.direct_slot = at;
      st.direct_p0 = st.priority == 0;
      auto pos = std::find_if(ranked.begin(), ranked.end(),
                              [&](const model_route* r) { return r->index == uint32_t(at); });
      if (pos != ranked.end()) std::rotate(ranked.begin(), pos, pos + 1);
      return call_upstream(self, std::move(ranked), 0);
    }
  }
  sched_ask ask;
  ask.id = self->id();  // one request per connection actor at a time
  ask.priority = st.priority;
  ask.tenant = st.tenant;
  st.sched_tokens = static_cast<uint32_t>(std::min<uint64_t>(estimate_tokens(st.req), UINT32_MAX));
  ask.tokens = st.sched_tokens;
  ask.order = std::move(order);
  bool merges = false;  // an endpoint of its order takes prompt arrays
  for (const model_route* r : ranked) merges = merges || r->prompt_array;
  scheduling::mergeable_prompt m;
  if (merges && st.req.kind == openai::endpoint::completions && !st.req.stream &&
      scheduling::mergeable_completion(st.req.body, m)) {
    ask.merge_key = m.key;
    ask.merge_body = st.req.body;
    ask.merge_prompt = std::move(m.prompt);
    ask.merge_weight = m.weight;
  }
  st.queued = true;
  self->request(st.model->batcher, caf::infinite, std::move(ask))
      .then(
          [self](sched_grant& g) {
            auto& st = self->state;
            st.queued = false;
            if (g.refused == sched_cancelled) return refuse(self, client_left());
            if (g.refused != sched_granted) {
              openai::api_error e = openai::service_unavailable(
                  g.refused == sched_queue_full
                      ? "The model's queue is full; retry after the time given."
                      : "The request waited too long in the model's queue; retry after the time "
                        "given.",
                  g.retry_after_s);
              e.code = g.refused == sched_queue_full ? "queue_full" : "queue_timeout";
              return refuse(self, std::move(e));
            }
            st.scheduled = true;
            std::vector<const model_route*> order;
            for (uint16_t i : g.order)
              if (i < st.model->endpoints.size()) order.push_back(&st.model->endpoints[i]);
            if (order.empty()) order.push_back(&st.model->endpoints.front());
            call_upstream(self, std::move(order), static_cast<int64_t>(g.waited_us / 1000),
                          g.answer.empty() ? nullptr : &g);
          },
          [self](caf::error&) {
            self->state.queued = false;
            refuse(self, openai::service_unavailable(
                             "The model's scheduler is unavailable; retry shortly.", 1));
          });
}

/// Step 9's plan and step 10: the call to `order[0]`, the next ones (up to
/// routing.max_attempts in all) as the failover order. With `merged` (prompt_array), step 8
/// made the call already: the plan carries this request's part of its answer.
void call_upstream(self_ptr self, std::vector<const model_route*> order, int64_t queue_ms,
                   sched_grant* merged) {
  auto& st = self->state;
  order.resize(std::min<size_t>(order.size(), std::max<uint32_t>(1, st.ctx->routing.max_attempts)));
  upstream_plan plan = route(order, st.req, st.to);
  plan.queue_ms = queue_ms;
  if (merged != nullptr) {
    plan.prefetched = true;
    plan.body = std::move(merged->answer);
    plan.prefetched_ns = merged->upstream_us * 1000;
    plan.merged = merged->merged;
    plan.fallbacks.clear();
  } else if (st.model->endpoints.size() > 1 && st.ctx->routing.board) {
    // Counted now, not when the loop starts the call: requests routed meanwhile see it.
    st.ctx->routing.board->live[plan.endpoint].in_flight.fetch_add(1, std::memory_order_relaxed);
    plan.in_flight_taken = true;
  }
  plan.rate = st.rate;
  if (st.lookup_start_ns != 0) plan.cache_lookup_ns = now_ns() - st.lookup_start_ns;
  plan.dedup_leader = st.leading;
  plan.capture = st.store || st.leading;
  plan.acks = decide_acks(st, true);
  plan.write_ahead = plan.acks != 0;
  plan.moderate_output = st.ctx->compliance.moderation->get()->output;
  plan.keep_output = static_cast<bool>(st.ctx->compliance.audit);
  plan.filing_id = filing_of(st);
  plan.tenant = st.tenant;
  if (plan.stream) {
    // Every stream is billed (and cached) by its usage: ask for it, strip it if unasked.
    plan.body = openai::with_stream_usage(plan.body);
    plan.strip_usage = !st.req.include_usage;
  }
  // 10 upstream, 11 moderate out, 12 reply: the I/O loop relays the upstream answer to the
  //    client through the output engines (streams window by window, so blocked text is never
  //    sent) and reports how it ended with a request_outcome.
  st.ctx->ports.at(st.to.loop)->dispatch(std::move(plan));
}

/// Step 13's usage record of a request that was answered (or failed upstream), and in
/// `spent_tokens` what an upstream generated for it (the tokens that count against tpm).
billing::usage_record usage_record_of(const connection_state& st, const request_outcome& outcome,
                                      uint64_t& spent_tokens) {
  const account_plan& plan = st.ctx->accounts;
  const accounts::tenant* t = st.dir->tenant(st.tenant);
  const accounts::price price = price_of(*st.dir, *st.route, st.req.model);
  billing::usage_record rec;
  rec.request_id = st.meta.record_id.empty() ? st.meta.request_id : st.meta.record_id;
  if (st.meta.record_id != st.meta.request_id) rec.client_request_id = st.meta.request_id;
  rec.ts_ms = unix_ms();
  rec.tenant = st.tenant;
  if (st.caller != nullptr) {
    rec.project = st.caller->project;
    rec.key = st.caller->id;
  }
  rec.model = st.req.model;
  rec.endpoint = std::string(endpoint_name(st.req.kind));
  rec.status = outcome.status;
  rec.prompt_tokens = outcome.usage.prompt_tokens;
  rec.cached_tokens = outcome.usage.cached_tokens;
  rec.completion_tokens = outcome.usage.completion_tokens;
  rec.cost_currency = price.currency;
  rec.charged_currency = t != nullptr ? t->currency : price.currency;
  const int64_t list = cost_of(price, rec.prompt_tokens, rec.cached_tokens, rec.completion_tokens);
  spent_tokens = 0;
  if (st.from_cache) {
    rec.result = outcome.status != 200 ? billing::outcome::upstream_error
                 : st.deduped          ? billing::outcome::dedup
                                       : billing::outcome::cache_hit;
    if (outcome.status == 200) {
      rec.saved_micros = list;
      rec.charged_micros = static_cast<int64_t>(std::llround(
          plan.cache_hit_charge * static_cast<double>(charge_of(plan, t, list, price.currency))));
    }
  } else {
    rec.provider = st.route->provider;
    if (!outcome.usage_reported && (outcome.status == 200 || outcome.client_gone)) {
      // No usage from the upstream (or the client left before it came): the input from its
      // length, the output from what was sent; the record says it is an estimate. A served
      // answer is never recorded as 0 tokens.
      rec.estimated = true;
      rec.prompt_tokens = static_cast<uint32_t>(st.req.input_chars / 4 + 1);
      rec.completion_tokens = outcome.completion_estimate;
    }
    rec.result = outcome.client_gone                           ? billing::outcome::client_gone
                 : outcome.stream_cut || outcome.status != 200 ? billing::outcome::upstream_error
                                                               : billing::outcome::ok;
    rec.cost_micros = cost_of(price, rec.prompt_tokens, rec.cached_tokens, rec.completion_tokens);
    rec.charged_micros = charge_of(plan, t, rec.cost_micros, price.currency);
    spent_tokens = uint64_t{rec.prompt_tokens} + rec.completion_tokens;
  }
  return rec;
}

/// Step 13's money and evidence: the reservation settled to the actual usage, then the usage
/// and audit records. A held answer (write-ahead) is released once its records are durable.
void bill(self_ptr self, const request_outcome& outcome) {
  auto& st = self->state;
  uint64_t spent_tokens = 0;
  billing::usage_record rec = usage_record_of(st, outcome, spent_tokens);
  if (st.ticket != 0) {
    self->send(quota_owner(st), quota_settle_atom::value, st.ticket, spent_tokens,
               rec.charged_micros);
  }
  std::vector<std::pair<caf::actor, caf::message>> out;
  record_messages(st, std::move(rec), outcome, out);
  for (auto& [writer, msg] : out) self->send(writer, std::move(msg));
}

/// Step 13's evidence: the audit record of the request, whatever its outcome. `rec` (its usage)
/// and `outcome` are null for a request refused before any answer. Takes the request's input text
/// and verdicts out of `st`. Carries the texts, or only their digests when the writer keeps no
/// text (compliance_plan::audit_keeps_text); a cached answer served as stored comes with its
/// digest (request_outcome::output_digest), made once when it was stored.
audit::audit_record audit_record_of(connection_state& st, int status,
                                    const billing::usage_record* rec,
                                    const request_outcome* outcome) {
  audit::audit_record r;
  r.request_id = st.meta.request_id;  // the x-request-id the client was given
  r.ts_ms = st.received_ms != 0 ? st.received_ms : unix_ms();
  r.tenant = st.tenant;
  if (st.caller != nullptr) {
    r.project = st.caller->project;
    r.key_id = st.caller->id;
  }
  r.model = st.req.model;
  r.endpoint = std::string(endpoint_name(st.req.kind));
  r.status = status;
  r.input_verdicts = std::move(st.input_verdicts);
  if (rec != nullptr) {
    r.provider = rec->provider.empty() ? (st.deduped ? "dedup" : "cache") : rec->provider;
    r.prompt_tokens = rec->prompt_tokens;
    r.completion_tokens = rec->completion_tokens;
    r.cost_micros = rec->charged_micros;
    r.cost_currency = rec->charged_currency;
  }
  static const std::string no_output;
  const std::string* output = &no_output;
  if (outcome != nullptr) {
    r.latency_ms = static_cast<uint32_t>(outcome->total_ns / 1'000'000);
    r.output_verdicts = outcome->output_verdicts;
    output = status == 200 ? &outcome->output_text : &outcome->error_body;
  } else {
    r.latency_ms = static_cast<uint32_t>(std::max<int64_t>(0, unix_ms() - st.received_ms));
  }
  const compliance_plan& c = st.ctx->compliance;
  if (c.audit_keeps_text) {
    r.input_text = std::move(st.input_text);
    r.output_text = *output;
    return r;
  }
  // What could not be digested here goes as text: the writer digests it (or says why).
  r.input_digest = audit::recent_digest(c.audit_algo, st.input_text);
  if (r.input_digest.empty()) r.input_text = std::move(st.input_text);
  st.input_text.clear();
  if (outcome != nullptr && status == 200 && !outcome->output_digest.empty() &&
      outcome->output_digest_algo == static_cast<uint8_t>(c.audit_algo)) {
    r.output_digest = outcome->output_digest;  // a cached answer served as stored
  } else {
    r.output_digest = audit::digest(c.audit_algo, *output);
    if (r.output_digest.empty()) r.output_text = *output;
  }
  return r;
}

/// A message of records for their writer: with the held answer's target when the answer waits
/// for them, else counted in records_behind until the writer has written them.
template <class... Records>
caf::message to_writer(const connection_state& st, bool held, Records&&... records) {
  if (held) return caf::make_message(std::forward<Records>(records)..., st.to);
  st.ctx->accounts.records_behind->fetch_add(1, std::memory_order_relaxed);
  return caf::make_message(std::forward<Records>(records)...);
}

/// The audit record of a request refused before any answer (nothing was held for it).
void audit_refusal(self_ptr self, int status) {
  auto& st = self->state;
  if (const caf::actor& writer = st.ctx->compliance.audit)
    self->send(writer, to_writer(st, false, audit_record_of(st, status, nullptr, nullptr)));
}

/// Step 13's records of a request that was answered (or failed upstream), as messages to their
/// writers: the usage record to the ledger and the audit record to the audit writer, or both
/// in one message to the audit writer when it carries usage (one batch, one release). A held
/// answer's target goes with each message whose record it waits for (to_writer).
void record_messages(connection_state& st, billing::usage_record&& rec,
                     const request_outcome& outcome,
                     std::vector<std::pair<caf::actor, caf::message>>& out) {
  const caf::actor& ledger = st.ctx->accounts.ledger;
  if (const caf::actor& writer = st.ctx->compliance.audit) {
    audit::audit_record r = audit_record_of(st, outcome.status, &rec, &outcome);
    if (records_together(*st.ctx)) {
      out.emplace_back(writer, to_writer(st, outcome.held && (st.ack_audit || st.ack_ledger),
                                         std::move(r), std::move(rec)));
      return;
    }
    out.emplace_back(writer, to_writer(st, outcome.held && st.ack_audit, std::move(r)));
  }
  if (ledger)
    out.emplace_back(ledger, to_writer(st, outcome.held && st.ack_ledger, std::move(rec)));
}

/// Step 13 for one request.
void settle(self_ptr self, request_outcome& outcome) {
  auto& st = self->state;
  if (outcome.attempts != 0 && st.model != nullptr &&
      outcome.endpoint_index < st.model->endpoints.size())
    st.route = &st.model->endpoints[outcome.endpoint_index];  // billed and audited as served
  if (st.scheduled && st.direct_slot >= 0) {
    // Step 8's direct grant: its slot is free; the batcher hears of it if it holds requests.
    if (st.model->gate->give_back(static_cast<size_t>(st.direct_slot), st.direct_p0))
      self->send(st.model->batcher, sched_freed_atom::value);
  } else if (st.scheduled) {
    // Step 8's slot is free; its token reservation is settled to what the call used.
    sched_done d;
    d.id = self->id();
    d.used_tokens =
        outcome.usage_reported
            ? outcome.usage.prompt_tokens + outcome.usage.completion_tokens
            : static_cast<uint32_t>(st.req.input_chars / 4 + 1) + outcome.completion_estimate;
    self->send(st.model->batcher, d);
  }
  // 13 settle      the dedup table gives the leader's answer to its followers; the cache
  //                stores a complete, cacheable answer (a leader's before its entry closes:
  //                store_then_close); the quota reservation is settled and the ledger
  //                records the usage (audit arrives with issue 5); metrics are recorded by the
  //                I/O loop.
  const bool storing =
      st.store && !st.from_cache && outcome.answer_cacheable && st.route != nullptr;
  dedup_result result;
  if (st.leading) {
    result.key = st.exact_key;
    result.status = outcome.status;
    if (outcome.status == 200 && !outcome.answer.empty()) {
      result.body = outcome.answer;
      result.prompt_tokens = outcome.usage.prompt_tokens;
      result.completion_tokens = outcome.usage.completion_tokens;
    } else if (outcome.status != 200 && !outcome.error_body.empty()) {
      result.body = outcome.error_body;
    } else {
      result.status = 502;
      result.body = openai::error_body(
          openai::upstream_error("The identical request this one joined did not complete."));
    }
    if (!storing) self->send(dedup_owner(st), dedup_done_atom::value, std::move(result));
  }
  if (storing) {
    prepare_query_tiers(st);  // a no-cache request skipped the lookup that computes them
    const model_route& r = *st.route;
    const uint32_t ttl =
        st.meta.cache_ttl_s != 0 ? std::min(st.meta.cache_ttl_s, r.cache_ttl_s) : r.cache_ttl_s;
    const auto cost = static_cast<uint64_t>(
        cost_of(price_of(*st.dir, r, st.req.model), outcome.usage.prompt_tokens,
                outcome.usage.cached_tokens, outcome.usage.completion_tokens));
    cache_entry e;
    e.key = st.exact_key;
    e.ns = st.key.namespace_hash;
    e.scope = st.scope;
    e.model = st.req.model;
    e.body = std::move(outcome.answer);
    e.prompt_tokens = outcome.usage.prompt_tokens;
    e.completion_tokens = outcome.usage.completion_tokens;
    e.cost_micros = cost;
    e.upstream_ms = static_cast<uint32_t>(outcome.upstream_ns / 1'000'000);
    e.ttl_s = ttl;
    if (digests_answers(*st.ctx)) {
      e.body_digest = audit::digest(st.ctx->compliance.audit_algo, e.body);
      e.body_digest_algo = static_cast<uint8_t>(st.ctx->compliance.audit_algo);
      if (outcome.output_digest.empty() && outcome.output_text == e.body) {
        outcome.output_digest = e.body_digest;  // the client got it as stored: hashed once
        outcome.output_digest_algo = e.body_digest_algo;
      }
    }
    if (st.leading)
      store_then_close(self, std::move(e), std::move(result));
    else
      self->send(owner(st, st.exact_key), cache_put_atom::value, std::move(e));
    // The lookup's embedding is reused. Without one, the builtin embedder computes it here;
    // the embedder actor is not asked again (it failed, or no lookup ran): no semantic pointer.
    const bool semantic = !st.guard.empty() && (!st.embedding.empty() || !st.ctx->cache.embedder) &&
                          !semantic_spent(st, true);
    if (!st.template_key.empty() || semantic) {
      cache_link l;
      l.ns = st.ns;
      l.exact_key = st.exact_key;
      l.template_key = st.template_key;
      if (semantic) {
        l.embedding = st.embedding.empty()
                          ? canonical::embed(st.key.query_text, st.ctx->cache.embed)
                          : std::move(st.embedding);
        l.guard = st.guard;
      }
      l.scope = st.scope;
      l.model = st.req.model;
      l.cost_micros = cost;
      l.ttl_s = ttl;
      self->send(owner(st, st.ns), cache_link_atom::value, std::move(l));
    }
  }
  if (st.route != nullptr) {
    bill(self, outcome);
  } else if (outcome.held) {
    st.ctx->ports.at(st.to.loop)->release(st.to);  // cannot happen: held answers are routed
  }
  if (outcome.held && !st.ack_ledger && !st.ack_audit)
    st.ctx->ports.at(st.to.loop)->release(st.to);  // cannot happen: held means a record waits
  end_request(st);
  if (st.ctx->accounts.settling) --*st.ctx->accounts.settling;
}

}  // namespace

accounts::price list_price(const model_route& r, const std::string& model) {
  accounts::price p;
  p.provider = r.provider;
  p.model = model;
  p.input_per_m = r.price_input_per_m;
  p.cached_input_per_m = r.price_cached_input_per_m;
  p.output_per_m = r.price_output_per_m;
  p.currency = r.currency;
  return p;
}

bool authenticate(const account_plan& plan, const directory& dir, std::string_view bearer,
                  std::string_view endpoint, std::string_view model, int64_t now_s,
                  const accounts::api_key*& key, std::string& tenant, openai::api_error& error) {
  key = nullptr;
  tenant = plan.anonymous_tenant;
  // Keyless traffic is the anonymous tenant's: refused when keys are required, or when an
  // operator disabled that tenant.
  auto anonymous_allowed = [&] {
    if (plan.required) return false;
    const accounts::tenant* anon = dir.tenant(plan.anonymous_tenant);
    return anon == nullptr || !anon->disabled;
  };
  if (bearer.empty()) {
    if (anonymous_allowed()) return true;
    error = openai::unauthenticated(
        "missing_api_key",
        "You didn't provide an API key. Send it in the Authorization header as "
        "'Authorization: Bearer sk-tc-…'.");
    return false;
  }
  const accounts::api_key* k = dir.key_by_secret_hash(accounts::secret_hash(bearer));
  if (k == nullptr) {
    // On a node that does not require keys, a placeholder key (SDKs insist on one) is the
    // anonymous tenant; a key of ours that does not resolve is always refused.
    if (bearer.substr(0, accounts::key_scheme.size()) != accounts::key_scheme) {
      if (anonymous_allowed()) return true;
      error = openai::unauthenticated("invalid_api_key",
                                      "Incorrect API key provided: " + masked(bearer) + ".");
      return false;
    }
    error = openai::unauthenticated("invalid_api_key",
                                    "Incorrect API key provided: " + masked(bearer) + ".");
    return false;
  }
  std::string_view status = accounts::key_status(*k, now_s);
  if (status == "revoked" || status == "expired") {
    error = openai::unauthenticated(
        "invalid_api_key", "The API key " + k->prefix + "… has " +
                               std::string(status == "revoked" ? "been revoked." : "expired."));
    return false;
  }
  const accounts::tenant* t = dir.tenant(k->tenant);
  if (t == nullptr || t->disabled) {
    error = openai::permission_denied("The tenant of this API key is disabled.");
    return false;
  }
  bool endpoint_ok = false;
  for (const auto& e : k->allowed_endpoints) endpoint_ok = endpoint_ok || e == endpoint;
  if (!endpoint_ok) {
    error = openai::permission_denied("This API key may not use the " + std::string(endpoint) +
                                      " endpoint.");
    return false;
  }
  if (!model.empty()) {
    bool model_ok = false;
    for (const auto& g : k->allowed_models) model_ok = model_ok || accounts::glob_match(g, model);
    if (!model_ok) {
      error = openai::permission_denied(
          "This API key may not use the model '" + std::string(model) + "'.", "model");
      return false;
    }
  }
  key = k;
  tenant = k->tenant;
  return true;
}

std::unique_ptr<lane_request> try_exact_lane(const std::shared_ptr<const pipeline>& ctx,
                                             openai::request& req, request_meta& meta,
                                             reply_target to, cached_reply& reply) {
  const pipeline& c = *ctx;
  const cache_plan& cache = c.cache;
  // What needs an actor, or more than this, is checked first, on what the request says.
  if (!cache.enabled || !cache.loop_hits || cache.stores.empty() ||
      cache.stores.size() != cache.shards.size() || meta.no_cache)
    return nullptr;
  if (c.aliases.count(req.model) != 0 || c.groups.count(req.model) != 0 ||
      (!c.auto_model.name.empty() && req.model == c.auto_model.name))
    return nullptr;  // step 3 would pick the model: the actor way
  if (c.accounts.store_health->load(std::memory_order_relaxed) != store_ok && c.accounts.ledger)
    return nullptr;  // step 2 refuses or adds fallback limits
  if (c.compliance.moderation->get()->input) return nullptr;  // step 4
  // Only a request step 5 keys can be an exact hit: most traffic leaves here, before the loop
  // runs steps 1 and 3 that the actor then runs again.
  if (!keyable(req, cache.any_nondeterministic)) return nullptr;

  auto lane = std::make_unique<lane_request>();
  connection_state& st = lane->st;
  st.ctx = ctx;
  st.to = to;
  st.req = std::move(req);
  st.meta = std::move(meta);
  auto decline = [&] {  // untouched: the actor runs every step again
    req = std::move(st.req);
    meta = std::move(st.meta);
    return nullptr;
  };
  st.received_ms = unix_ms();
  // 1 auth: a refusal is the actor's to answer and audit.
  st.dir = c.accounts.directory->get();
  openai::api_error error;
  if (!authenticate(c.accounts, *st.dir, st.meta.api_key, endpoint_name(st.req.kind), st.req.model,
                    st.received_ms / 1000, st.caller, st.tenant, error))
    return decline();
  take_caller(st);
  // 3 validate, without changing the request.
  st.model = validate(c, st.req, error);
  if (st.model == nullptr) return decline();
  st.route = &st.model->endpoints.front();
  if (!check_residency(st, error) || !surely_fits(*st.model, st.req)) return decline();
  // 2 admission: nothing to reserve.
  for (const quota_scope& sc : scopes_of(st))
    if (!sc.limit.empty()) return decline();
  // 5 canonicalize, 6 the exact tier.
  if (!canonicalize(st)) return decline();
  const uint64_t lookup_start = now_ns();
  cache_hit hit;
  {
    shared_cache_store& table = *local_table(cache, st.exact_key);  // local: checked above
    std::unique_lock<std::mutex> lock(table.mu, std::try_to_lock);
    if (!lock.owns_lock() || !table.store) return decline();  // busy: no waiting on a loop
    // Expiry times are on the steady clock, in ms: lookup_start's reading serves.
    const cache_record* r = table.store->get_live(st.exact_key, lookup_start / 1'000'000);
    if (r == nullptr || r->tier != cache_tier::exact) return decline();
    hit.body = r->body;
    hit.prompt_tokens = r->prompt_tokens;
    hit.completion_tokens = r->completion_tokens;
    hit.cost_micros = r->cost_micros;
    hit.body_digest = r->body_digest;
    hit.body_digest_algo = r->body_digest_algo;
  }
  // As run() keeps it; an answer from the cache needs the body for nothing else.
  if (c.compliance.audit) st.input_text = std::move(st.req.body);
  st.from_cache = true;
  reply = reply_to_client(st, std::move(hit.body));
  add_body_digest(st, reply, std::move(hit.body_digest), hit.body_digest_algo);
  reply.tier = "exact";
  reply.cache_header = "hit-exact";
  reply.prompt_tokens = hit.prompt_tokens;
  reply.completion_tokens = hit.completion_tokens;
  reply.saved_cost_micros = hit.cost_micros;
  reply.cache_lookup_ns = now_ns() - lookup_start;
  reply.acks = decide_acks(st, c.accounts.cache_hit_charge > 0);
  reply.write_ahead = reply.acks != 0;
  reply.keep_output = static_cast<bool>(c.compliance.audit);
  reply.filing_id = filing_of(st);
  return lane;
}

void settle_exact_lane(lane_request& lane, const request_outcome& outcome,
                       std::vector<std::pair<caf::actor, caf::message>>& out) {
  connection_state& st = lane.st;
  uint64_t spent_tokens = 0;  // none: no upstream, no reservation to settle
  record_messages(st, usage_record_of(st, outcome, spent_tokens), outcome, out);
}

caf::behavior connection(caf::stateful_actor<connection_state>* self,
                         std::shared_ptr<const pipeline> ctx) {
  self->state.ctx = std::move(ctx);
  return {
      [self](openai::request& req, reply_target to, request_meta& meta) {
        self->state.req = std::move(req);
        self->state.to = to;
        self->state.meta = std::move(meta);
        run(self);
      },
      [self](request_outcome& outcome) { settle(self, outcome); },
      [self](dedup_attach& a) {
        auto& st = self->state;
        if (st.rechecking && a.key == st.exact_key)
          return st.early_attaches.push_back(std::move(a));
        if (!st.leading || a.key != st.exact_key) return;  // that request already settled
        st.ctx->ports.at(st.to.loop)->attach(st.to, std::move(a.follower), a.key);
      },
      [self](dedup_events& ev) {
        auto& st = self->state;
        if (!st.following || ev.key != st.exact_key) return;  // not (or no longer) waiting
        st.live = true;
        st.from_cache = true;
        st.deduped = true;
        if (ev.end) st.following = false;  // the leader's result that follows is not needed
        follow_chunk c;
        c.to = st.to;
        c.events = std::move(ev.events);
        c.include_usage = st.req.include_usage;
        c.end = ev.end;
        c.cut = ev.cut;
        c.error = std::move(ev.error);
        st.ctx->ports.at(st.to.loop)->follow(std::move(c));
      },
      [self](side_answer& a) { on_side_answer(self, a); },
      [self](client_gone_atom, const reply_target& to) {
        auto& st = self->state;
        if (st.to.loop != to.loop || st.to.slot != to.slot) return;  // another request's
        st.client_gone = true;
        if (st.queued && !st.leading) self->send(st.model->batcher, sched_cancel{self->id()});
      },
      [self](dedup_result& r) {
        auto& st = self->state;
        if (!st.following || r.key != st.exact_key || st.live) return;
        serve_leader_result(self, r);
      },
  };
}

}  // namespace tc::actors
