#include "actors/cache_shard.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string_view>
#include <utility>

namespace tc::actors {

namespace {

uint64_t now_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

uint64_t now_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

uint64_t expiry(uint64_t now, uint32_t ttl_s) {
  return ttl_s == 0 ? 0 : now + uint64_t{ttl_s} * 1000;
}

// Template and semantic records point at the exact key of their answer: its 16 bytes lead
// `extra`, a semantic record's guard text follows.
std::string pointer_bytes(const canonical::digest& d) {
  std::string out(16, '\0');
  std::memcpy(out.data(), &d.hi, 8);
  std::memcpy(out.data() + 8, &d.lo, 8);
  return out;
}

canonical::digest pointed_key(const cache_record& r) {
  canonical::digest d;
  if (r.extra.size() < 16) return d;
  std::memcpy(&d.hi, r.extra.data(), 8);
  std::memcpy(&d.lo, r.extra.data() + 8, 8);
  return d;
}

std::string_view guard_of(const cache_record& r) {
  return r.extra.size() < 16 ? std::string_view{} : std::string_view(r.extra).substr(16);
}

/// A record's scope is the filter's, or the filter's followed by a residency rule ("|...").
bool in_scope(std::string_view scope, std::string_view filter) {
  return scope.substr(0, filter.size()) == filter &&
         (scope.size() == filter.size() || scope[filter.size()] == '|');
}

bool matches(const cache_record& r, const cache_filter& f) {
  return (f.scope.empty() || in_scope(r.scope, f.scope)) &&
         (f.model.empty() || r.model == f.model) && (f.ns.empty() || r.ns == f.ns);
}

/// How many neighbours a semantic lookup inspects: the nearest may fail its guard while a
/// slightly farther one passes.
constexpr uint32_t semantic_candidates = 4;

/// Stores an answer under its exact key.
void put_exact(cache_shard_actor::stateful_pointer<cache_shard_state> self, cache_entry& e) {
  const uint64_t now = now_ms();
  cache_record r;
  r.tier = cache_tier::exact;
  r.key = e.key;
  r.ns = e.ns;
  r.scope = std::move(e.scope);
  r.model = std::move(e.model);
  r.body = std::move(e.body);
  r.prompt_tokens = e.prompt_tokens;
  r.completion_tokens = e.completion_tokens;
  r.cost_micros = e.cost_micros;
  r.upstream_ms = e.upstream_ms;
  r.body_digest = std::move(e.body_digest);
  r.body_digest_algo = e.body_digest_algo;
  r.expires_ms = expiry(now, e.ttl_s);
  std::lock_guard<std::mutex> lock(self->state.shared->mu);
  self->state.store->put(std::move(r), now);
}

}  // namespace

// The bucket counts nanoseconds of work times 100, so a refill of elapsed * pct never rounds.
semantic_budget::semantic_budget(uint32_t pct, uint64_t now_ns)
    : pct_(pct),
      capacity_(static_cast<int64_t>(pct) * 1'000'000'000),  // one second at pct/100
      tokens_(capacity_),
      last_ns_(now_ns) {}

void semantic_budget::refill(uint64_t now_ns) {
  if (now_ns <= last_ns_) return;
  // A second at most (the bucket holds one): no overflow however long the pause.
  const uint64_t elapsed = std::min<uint64_t>(now_ns - last_ns_, 1'000'000'000);
  last_ns_ = now_ns;
  tokens_ = std::min(capacity_, tokens_ + static_cast<int64_t>(elapsed * pct_));
}

bool semantic_budget::allow_search(uint64_t now_ns) {
  if (pct_ == 0) return true;
  refill(now_ns);
  return tokens_ > 0;
}

bool semantic_budget::allow_insert(uint64_t now_ns) {
  if (pct_ == 0) return true;
  refill(now_ns);
  return tokens_ >= capacity_ / 2;
}

uint64_t semantic_budget::resume_at(uint64_t now_ns) const {
  if (pct_ == 0 || tokens_ > 0) return now_ns;
  return now_ns + static_cast<uint64_t>(-tokens_) / pct_ + 1;
}

void semantic_budget::spend(uint64_t ns) {
  if (pct_ != 0) tokens_ -= static_cast<int64_t>(std::min<uint64_t>(ns, 1'000'000'000) * 100);
}

cache_shard_actor::behavior_type cache_shard(
    cache_shard_actor::stateful_pointer<cache_shard_state> self,
    std::shared_ptr<const cache_shard_config> cfg, std::shared_ptr<shared_cache_store> shared) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  st.shared = std::move(shared);
  st.budget = semantic_budget(st.cfg->semantic_budget_pct, now_ns());
  // Runs inside a store call, so under the lock; only this actor's calls remove records.
  auto owned =
      std::make_unique<cache_store>(st.cfg->limits, [self](const cache_record& r, removal why) {
        auto& s = self->state;
        if (why == removal::expired) ++s.expirations;
        if (r.tier != cache_tier::semantic) return;
        auto it = s.namespaces.find(r.ns);
        if (it == s.namespaces.end()) return;
        it->second->index.remove(r.id);
        if (it->second->index.size() == 0) s.namespaces.erase(it);  // no empty index kept
      });
  {
    std::lock_guard<std::mutex> lock(st.shared->mu);
    st.shared->store = std::move(owned);
    st.store = st.shared->store.get();
  }
  self->delayed_send(self, std::chrono::seconds(1), cache_sweep_atom::value);
  return {
      [self](cache_get_atom, const canonical::digest& key) {
        cache_hit hit;
        std::lock_guard<std::mutex> lock(self->state.shared->mu);
        const cache_record* r = self->state.store->get(key, now_ms());
        if (r == nullptr || r->tier != cache_tier::exact) return hit;
        hit.found = true;
        hit.tier = static_cast<uint8_t>(cache_tier::exact);
        hit.exact_key = key;
        hit.body = r->body;
        hit.prompt_tokens = r->prompt_tokens;
        hit.completion_tokens = r->completion_tokens;
        hit.cost_micros = r->cost_micros;
        hit.body_digest = r->body_digest;
        hit.body_digest_algo = r->body_digest_algo;
        return hit;
      },
      [self](cache_find_atom, const cache_probe& probe) {
        auto& s = self->state;
        cache_hit hit;
        const uint64_t now = now_ms();
        if (!probe.template_key.empty()) {
          std::lock_guard<std::mutex> lock(s.shared->mu);
          const cache_record* r = s.store->get(probe.template_key, now);
          if (r != nullptr && r->tier == cache_tier::template_) {
            hit.found = true;
            hit.tier = static_cast<uint8_t>(cache_tier::template_);
            hit.exact_key = pointed_key(*r);
            return hit;
          }
        }
        if (probe.embedding.size() != s.cfg->semantic.dimension) return hit;
        auto it = s.namespaces.find(probe.ns);
        if (it == s.namespaces.end()) return hit;
        const uint64_t start = now_ns();
        if (!s.budget.allow_search(start)) {
          ++s.skipped_searches;
          s.shared->semantic_spent_until_ns.store(s.budget.resume_at(start),
                                                  std::memory_order_relaxed);
          return hit;
        }
        auto near = it->second->index.search(probe.embedding.data(), semantic_candidates);
        s.budget.spend(now_ns() - start);
        for (const auto& n : near) {
          if (n.similarity < probe.threshold) break;  // sorted: the rest are farther
          std::lock_guard<std::mutex> lock(s.shared->mu);
          const cache_record* r = s.store->get_by_id(n.id, now);
          if (r == nullptr || guard_of(*r) != probe.guard) continue;
          hit.found = true;
          hit.tier = static_cast<uint8_t>(cache_tier::semantic);
          hit.similarity = n.similarity;
          hit.exact_key = pointed_key(*r);
          return hit;
        }
        return hit;
      },
      [self](cache_put_atom, cache_entry& e) { put_exact(self, e); },
      [self](cache_store_atom, cache_entry& e) {
        put_exact(self, e);
        return true;
      },
      [self](cache_link_atom, cache_link& l) {
        auto& s = self->state;
        const uint64_t now = now_ms();
        auto base = [&](cache_tier tier) {
          cache_record r;
          r.tier = tier;
          r.ns = l.ns;
          r.scope = l.scope;
          r.model = l.model;
          r.cost_micros = l.cost_micros;
          r.expires_ms = expiry(now, l.ttl_s);
          r.extra = pointer_bytes(l.exact_key);
          return r;
        };
        if (!l.template_key.empty()) {
          cache_record r = base(cache_tier::template_);
          r.key = l.template_key;
          std::lock_guard<std::mutex> lock(s.shared->mu);
          s.store->put(std::move(r), now);
        }
        if (l.embedding.size() != s.cfg->semantic.dimension) return;
        const uint64_t start = now_ns();
        if (!s.budget.allow_insert(start)) {
          ++s.skipped_inserts;  // the answer stays reachable by its exact and template keys
          return;
        }
        cache_record r = base(cache_tier::semantic);
        // One semantic record per answer in a namespace: re-storing it replaces the old one
        // (whose index entry leaves with it through the removal callback).
        r.key = canonical::hasher{}.add("semantic").add(l.ns).add(l.exact_key).finish();
        r.extra += l.guard;
        uint64_t id = 0;
        {
          std::lock_guard<std::mutex> lock(s.shared->mu);
          id = s.store->put(std::move(r), now);
        }
        if (id == 0) return;
        auto& ns = s.namespaces[l.ns];
        if (!ns) ns = std::make_unique<semantic_namespace>(s.cfg->semantic);
        ns->index.add(id, l.embedding.data());
        s.budget.spend(now_ns() - start);
      },
      [self](cache_drop_atom, const cache_filter& f) -> uint64_t {
        std::lock_guard<std::mutex> lock(self->state.shared->mu);
        return self->state.store->remove_if([&f](const cache_record& r) { return matches(r, f); });
      },
      [self](cache_stats_atom) {
        auto& s = self->state;
        cache_stats out;
        std::lock_guard<std::mutex> lock(s.shared->mu);
        out.entries = s.store->entries();
        out.bytes = s.store->bytes();
        out.evictions = s.store->evictions();
        out.expirations = s.expirations;
        out.namespaces = s.namespaces.size();
        out.semantic_skipped_searches =
            s.skipped_searches + s.shared->skipped_searches_early.load(std::memory_order_relaxed);
        out.semantic_skipped_inserts =
            s.skipped_inserts + s.shared->skipped_inserts_early.load(std::memory_order_relaxed);
        for (const auto& [ns, n] : s.namespaces) {
          out.semantic_entries += n->index.size();
          out.semantic_bytes += n->index.memory_bytes();
        }
        return out;
      },
      [self](cache_sweep_atom) {
        {
          std::lock_guard<std::mutex> lock(self->state.shared->mu);
          self->state.store->expire(now_ms(), 10'000);
        }
        self->delayed_send(self, std::chrono::seconds(1), cache_sweep_atom::value);
      },
  };
}

}  // namespace tc::actors
