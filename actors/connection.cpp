#include "actors/connection.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <utility>

#include "actors/dedup_table.hpp"
#include "protocol/canonical/template.hpp"
#include "protocol/openai/stream.hpp"

namespace tc::actors {

namespace {

using self_ptr = caf::stateful_actor<connection_state>*;

/// The cache scope of a request. Every request is the anonymous tenant's until API keys exist
/// (issue 4); then the scope is the key's tenant, or a scope the tenant declares shared.
constexpr std::string_view anonymous_scope = "tenant:anonymous";

uint64_t now_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

/// Step 3: the model exists and serves this endpoint.
const model_route* validate(const pipeline& ctx, const openai::request& req,
                            openai::api_error& error) {
  auto it = ctx.models.find(req.model);
  if (it == ctx.models.end()) {
    error = openai::model_not_found(req.model);
    return nullptr;
  }
  const bool wants_embedding = req.kind == openai::endpoint::embeddings;
  if (it->second.embedding != wants_embedding) {
    error = openai::invalid_request("The model '" + req.model + "' does not support " +
                                        std::string(openai::path_of(req.kind)) + ".",
                                    "model");
    return nullptr;
  }
  return &it->second;
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

/// Step 5: the request's keys, and whether steps 6 and 13 apply to it.
/// Returns true if the cache may answer it (step 6).
bool canonicalize(connection_state& st) {
  const cache_plan& cache = st.ctx->cache;
  const model_route& r = *st.route;
  if (!cache.enabled || !r.cache || cache.shards.empty()) return false;
  std::string error;
  if (!canonical::make_key(st.req, anonymous_scope, r.version, st.key, error)) return false;
  // Embeddings are deterministic; chat and completions only at temperature 0 or with a seed,
  // unless the model says otherwise.
  const bool embeddings = st.req.kind == openai::endpoint::embeddings;
  const bool eligible = embeddings || st.key.deterministic || r.cache_nondeterministic;
  if (!eligible) return false;
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

/// Step 9: the upstream call for the chosen route.
upstream_plan route(const model_route& r, openai::request& req, reply_target to) {
  upstream_plan plan;
  plan.to = to;
  plan.provider = r.provider;
  plan.model = req.model;
  plan.url = r.base_url + std::string(openai::path_of(req.kind)).substr(3);  // drop "/v1"
  plan.body = r.upstream_model == req.model ? std::move(req.body)
                                            : openai::with_model(req.body, r.upstream_model);
  plan.stream = req.stream;
  plan.connect_timeout_ms = r.connect_timeout_ms;
  plan.first_byte_timeout_ms = r.first_byte_timeout_ms;
  plan.total_timeout_ms = r.total_timeout_ms;
  return plan;
}

uint64_t cost_micros(const model_route& r, uint32_t prompt_tokens, uint32_t completion_tokens) {
  // A price per 1M tokens times tokens is the cost in micro-units.
  return static_cast<uint64_t>(
      std::llround(r.price_input_per_m * prompt_tokens + r.price_output_per_m * completion_tokens));
}

void end_request(connection_state& st) {
  st.req = openai::request{};
  st.meta = request_meta{};
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
  st.following = false;
  st.live = false;
  st.lookup_start_ns = 0;
}

void lookup_exact(self_ptr self);
void lookup_pointers(self_ptr self);
void fetch_pointed(self_ptr self, const cache_hit& pointer);
void serve_hit(self_ptr self, cache_hit& hit);
void dispatch(self_ptr self);
void call_upstream(self_ptr self);

const cache_shard_actor& owner(const connection_state& st, const canonical::digest& key) {
  const auto& shards = st.ctx->cache.shards;
  return shards[shard_of(key, static_cast<uint32_t>(shards.size()))];
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

/// Steps 1-6 for one request; step 6 continues asynchronously when the cache is asked.
void run(self_ptr self) {
  auto& st = self->state;
  io_port& port = *st.ctx->ports.at(st.to.loop);

  // 1 auth          pass-through: the anonymous tenant (issue 4 adds keys)
  // 2 admission     pass-through: no quotas yet (issue 4: tenant_quota.reserve)
  // 3 validate      the model is known and serves this endpoint
  openai::api_error error;
  st.route = validate(*st.ctx, st.req, error);
  if (st.route == nullptr) {
    port.reject(st.to, std::move(error));
    end_request(st);
    return;
  }
  // 4 moderate in   pass-through (issue 5: moderator.check)
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

/// Exact miss: the template and semantic pointers, in the shard that owns the namespace.
void lookup_pointers(self_ptr self) {
  auto& st = self->state;
  prepare_query_tiers(st);
  if (st.template_key.empty() && st.guard.empty()) return dispatch(self);
  cache_probe probe;
  probe.ns = st.ns;
  probe.template_key = st.template_key;
  if (!st.guard.empty()) {
    st.embedding = canonical::embed(st.key.query_text, st.ctx->cache.embed);
    probe.embedding = st.embedding;
    probe.guard = st.guard;
    probe.threshold = st.route->semantic_threshold;
  }
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
  return reply;
}

void serve_hit(self_ptr self, cache_hit& hit) {
  auto& st = self->state;
  st.from_cache = true;
  cached_reply reply = reply_to_client(st, std::move(hit.body));
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
  st.ctx->ports.at(st.to.loop)->serve(std::move(reply));
}

/// Step 7 for a request the cache did not answer: join an identical request in flight, or
/// lead it. Only cacheable requests coalesce: sharing one answer is what the cache does too.
void dispatch(self_ptr self) {
  auto& st = self->state;
  const auto& tables = st.ctx->cache.dedup_tables;
  if (!st.ctx->cache.dedup || tables.empty() || st.exact_key.empty()) return call_upstream(self);
  if (st.lookup_start_ns == 0) st.lookup_start_ns = now_ns();
  const auto& table = dedup_owner(st);
  self->request(table, lookup_timeout(self, table), dedup_join_atom::value, st.exact_key,
                caf::actor_cast<caf::actor>(self), st.req.stream)
      .then(
          [self](bool leader) {
            auto& st = self->state;
            if (leader) {
              st.leading = true;
              return call_upstream(self);
            }
            st.following = true;  // dedup_events / dedup_result come next
          },
          [self](caf::error&) { call_upstream(self); });  // a slow table: go alone
}

/// A follower's answer: the leader's, as JSON or a synthesized stream, or its error.
void serve_leader_result(self_ptr self, dedup_result& r) {
  auto& st = self->state;
  st.following = false;
  if (r.status == 0) {  // the leader was lost: go alone
    st.exact_key = {};  // and do not join again
    return call_upstream(self);
  }
  st.from_cache = true;
  cached_reply reply = reply_to_client(st, std::move(r.body));
  reply.status = r.status;
  reply.cache_header = "dedup";
  reply.tier = "dedup";
  reply.prompt_tokens = r.prompt_tokens;
  reply.completion_tokens = r.completion_tokens;
  reply.saved_cost_micros = cost_micros(*st.route, r.prompt_tokens, r.completion_tokens);
  reply.cache_lookup_ns = now_ns() - st.lookup_start_ns;
  st.ctx->ports.at(st.to.loop)->serve(std::move(reply));
}

/// Steps 8-10: the upstream call.
void call_upstream(self_ptr self) {
  auto& st = self->state;
  // 8 schedule      pass-through: dispatched at once (issue 6: batcher.enqueue)
  // 9 route         the one provider that serves the model (issue 6: router scoring)
  upstream_plan plan = route(*st.route, st.req, st.to);
  if (st.lookup_start_ns != 0) plan.cache_lookup_ns = now_ns() - st.lookup_start_ns;
  plan.dedup_leader = st.leading;
  if (st.store || st.leading) {
    plan.capture = true;
    if (plan.stream) {
      // A stream's answer is cached only with its usage: ask for it, strip it if unasked.
      plan.body = openai::with_stream_usage(plan.body);
      plan.strip_usage = !st.req.include_usage;
    }
  }
  // 10 upstream, 11 moderate out (pass-through, issue 5), 12 reply: the I/O loop relays the
  //    upstream answer to the client and reports how it ended with a request_outcome.
  st.ctx->ports.at(st.to.loop)->dispatch(std::move(plan));
}

/// Step 13 for one request.
void settle(self_ptr self, request_outcome& outcome) {
  auto& st = self->state;
  // 13 settle      quota settle, ledger and audit arrive with issues 4-5; the cache stores
  //                a complete, cacheable answer; the dedup table gives the leader's answer to
  //                its followers; metrics are recorded by the I/O loop.
  if (st.leading) {
    dedup_result r;
    r.key = st.exact_key;
    r.status = outcome.status;
    if (outcome.status == 200 && !outcome.answer.empty()) {
      r.body = outcome.answer;
      r.prompt_tokens = outcome.usage.prompt_tokens;
      r.completion_tokens = outcome.usage.completion_tokens;
    } else if (outcome.status != 200 && !outcome.error_body.empty()) {
      r.body = outcome.error_body;
    } else {
      r.status = 502;
      r.body = openai::error_body(
          openai::upstream_error("The identical request this one joined did not complete."));
    }
    self->send(dedup_owner(st), dedup_done_atom::value, std::move(r));
  }
  if (st.store && !st.from_cache && outcome.answer_cacheable && st.route != nullptr) {
    prepare_query_tiers(st);  // a no-cache request skipped the lookup that computes them
    const model_route& r = *st.route;
    const uint32_t ttl =
        st.meta.cache_ttl_s != 0 ? std::min(st.meta.cache_ttl_s, r.cache_ttl_s) : r.cache_ttl_s;
    const uint64_t cost =
        cost_micros(r, outcome.usage.prompt_tokens, outcome.usage.completion_tokens);
    cache_entry e;
    e.key = st.exact_key;
    e.ns = st.key.namespace_hash;
    e.scope = std::string(anonymous_scope);
    e.model = st.req.model;
    e.body = std::move(outcome.answer);
    e.prompt_tokens = outcome.usage.prompt_tokens;
    e.completion_tokens = outcome.usage.completion_tokens;
    e.cost_micros = cost;
    e.upstream_ms = static_cast<uint32_t>(outcome.upstream_ns / 1'000'000);
    e.ttl_s = ttl;
    self->send(owner(st, st.exact_key), cache_put_atom::value, std::move(e));
    if (!st.template_key.empty() || !st.guard.empty()) {
      cache_link l;
      l.ns = st.ns;
      l.exact_key = st.exact_key;
      l.template_key = st.template_key;
      if (!st.guard.empty()) {
        l.embedding = st.embedding.empty()
                          ? canonical::embed(st.key.query_text, st.ctx->cache.embed)
                          : std::move(st.embedding);
        l.guard = st.guard;
      }
      l.scope = std::string(anonymous_scope);
      l.model = st.req.model;
      l.cost_micros = cost;
      l.ttl_s = ttl;
      self->send(owner(st, st.ns), cache_link_atom::value, std::move(l));
    }
  }
  end_request(st);
}

}  // namespace

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
        if (!st.leading || a.key != st.exact_key) return;  // that request already settled
        st.ctx->ports.at(st.to.loop)->attach(st.to, std::move(a.follower), a.key);
      },
      [self](dedup_events& ev) {
        auto& st = self->state;
        if (!st.following || ev.key != st.exact_key) return;  // not (or no longer) waiting
        st.live = true;
        st.from_cache = true;
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
      [self](dedup_result& r) {
        auto& st = self->state;
        if (!st.following || r.key != st.exact_key || st.live) return;
        serve_leader_result(self, r);
      },
  };
}

}  // namespace tc::actors
