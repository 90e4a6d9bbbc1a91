// batcher: see batcher.hpp. Every handler ends in pump(), which expires, releases and re-arms.
#include "actors/batcher.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>

#include "actors/connection.hpp"
#include "protocol/openai/request.hpp"
#include "protocol/scheduling/prompt_array.hpp"

namespace tc::actors {

namespace {

using self_ptr = caf::stateful_actor<batcher_state>*;

/// Queue deadlines are checked at least this often while requests are held.
constexpr int64_t expiry_tick_us = 100'000;

/// The largest merged answer read; a larger one fails the merge (its requests go alone).
constexpr uint32_t merged_answer_limit = 16 * 1024 * 1024;

int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

constexpr uint64_t one_p0 = uint64_t{1} << 32;  ///< a P0 request in batcher_gate's `taken`

/// The endpoint `i` may take one more request of `priority` now: a free slot (P1-P4 leave the
/// P0 reserve free), tokens in its bucket (a request goes while the balance is positive; its
/// estimate may take it below zero).
bool has_capacity(const batcher_state& st, size_t i, int64_t now, int priority) {
  const batcher_state::capacity& c = st.endpoints[i];
  return st.gate->has_slot(i, priority) && (c.bucket.unlimited() || c.bucket.available(now) > 0);
}

/// Each endpoint's breaker state: healthy (closed or half-open, not in Retry-After) or not.
std::vector<bool> healthy_endpoints(const batcher_state& st) {
  const int64_t now_ms = health_now_ms();
  std::vector<bool> out(st.endpoints.size());
  for (size_t i = 0; i < out.size(); ++i) out[i] = st.gate->healthy(i, now_ms);
  return out;
}

/// Where a request of `priority` with router order `order` goes: the first healthy endpoint of
/// the order with capacity; when none of its endpoints is healthy, the first with capacity (it
/// fails fast and the client hears it, instead of waiting out the queue timeout). -1: wait.
int pick_endpoint(const batcher_state& st, const std::vector<bool>& healthy,
                  const std::vector<uint16_t>& order, int64_t now, int priority) {
  bool any_healthy = false;
  for (uint16_t i : order) any_healthy = any_healthy || (i < healthy.size() && healthy[i]);
  for (uint16_t i : order)
    if (i < healthy.size() && (healthy[i] || !any_healthy) && has_capacity(st, i, now, priority))
      return i;
  return -1;
}

/// Whether a request of `priority` could go somewhere now: an endpoint with capacity that is
/// healthy, or any with capacity when none is healthy.
bool any_capacity(const batcher_state& st, const std::vector<bool>& healthy, int64_t now,
                  int priority) {
  const bool any_healthy = std::find(healthy.begin(), healthy.end(), true) != healthy.end();
  for (size_t i = 0; i < healthy.size(); ++i)
    if ((healthy[i] || !any_healthy) && has_capacity(st, i, now, priority)) return true;
  return false;
}

/// Counts `n` requests released at `now` (and the gate's direct grants since the last count)
/// in the dispatch rate.
void count_dispatch(batcher_state& st, int64_t now, uint32_t n = 1) {
  const int64_t second = now / 1'000'000;
  if (second != st.rate_second) {
    st.rate_last = second == st.rate_second + 1 ? st.rate_now : 0;
    st.rate_now = 0;
    st.rate_second = second;
  }
  const uint64_t direct = st.gate->direct_grants();
  st.rate_now += n + static_cast<uint32_t>(direct - st.direct_seen);
  st.direct_seen = direct;
}

/// Seconds until a refused client should retry: the queue's drain time at the recent rate.
uint32_t retry_after_s(batcher_state& st) {
  count_dispatch(st, now_us(), 0);
  const double rate = std::max<uint32_t>(1, std::max(st.rate_last, st.rate_now));
  const double s = std::ceil(static_cast<double>(st.queue->size()) / rate);
  return static_cast<uint32_t>(std::clamp(s, 1.0, 60.0));
}

void report_depth(batcher_state& st, int priority) {
  if (st.cfg->metrics) st.cfg->metrics->depth(priority, st.queue->size(priority));
}

void refuse(batcher_state& st, batcher_state::held& h, uint8_t why) {
  sched_grant g;
  g.refused = why;
  g.retry_after_s = retry_after_s(st);
  if (st.cfg->metrics) st.cfg->metrics->refused(h.priority, why);
  h.promise.deliver(std::move(g));
}

/// A full queue makes room for a request of `priority` by refusing the newest request of the
/// lowest priority below it, if there is one (a flood of P4 never keeps P0 out).
void shed_for(batcher_state& st, int priority) {
  for (int p = scheduling::priorities - 1; p > priority; --p) {
    std::optional<scheduling::item> shed = st.queue->remove_newest(p);
    if (!shed) continue;
    auto h = st.waiting.find(shed->id);
    if (h != st.waiting.end()) {
      refuse(st, h->second, sched_queue_full);
      st.waiting.erase(h);
    }
    report_depth(st, p);
    return;
  }
}

/// Makes sure a sched_pump arrives by `at_us` (one timer at a time: the earliest wins).
void arm(self_ptr self, int64_t at_us, int64_t now) {
  auto& st = self->state;
  if (at_us >= st.timer_at_us) return;
  st.timer_at_us = at_us;
  self->delayed_send(self, std::chrono::microseconds(std::max<int64_t>(0, at_us - now)),
                     sched_pump_atom::value);
}

/// When capacity will be back without any sched_done: the soonest bucket refill of an endpoint
/// whose slots are not all taken (INT64_MAX: only a sched_done frees capacity).
int64_t capacity_back_us(const batcher_state& st, int64_t now) {
  int64_t best = INT64_MAX;
  for (size_t i = 0; i < st.endpoints.size(); ++i) {
    const batcher_state::capacity& c = st.endpoints[i];
    if (!st.gate->has_slot(i, 1)) continue;
    if (c.bucket.unlimited()) continue;
    // The balance must be above zero: wait for it to reach one token.
    best = std::min(best, now + std::max<int64_t>(1, c.bucket.wait_us(1, now)));
  }
  return best;
}

/// A released batch's requests get their grants: those that can be merged at a prompt_array
/// endpoint (two or more with the same key granted there) go upstream as one call, whose answer
/// completes their grants (see on_merged); the others are granted now.
void deliver(self_ptr self, std::vector<std::pair<batcher_state::held, sched_grant>>& batch) {
  auto& st = self->state;
  std::map<std::pair<uint16_t, uint64_t>, std::vector<size_t>> groups;
  if (!st.cfg->ports.empty()) {
    for (size_t i = 0; i < batch.size(); ++i) {
      const auto& [h, g] = batch[i];
      if (h.merge_key == 0 || g.order.empty()) continue;
      if (!st.cfg->endpoints[g.order.front()].prompt_array) continue;
      groups[{g.order.front(), h.merge_key}].push_back(i);
    }
  }
  std::vector<bool> merged(batch.size(), false);
  for (auto& [at, members] : groups) {
    if (members.size() < 2) continue;
    const batcher_endpoint& e = st.cfg->endpoints[at.first];
    std::vector<std::string> prompts;
    batcher_state::merge_call call;
    call.endpoint = at.first;
    call.started_us = now_us();
    for (size_t i : members) {
      merged[i] = true;
      prompts.push_back(std::move(batch[i].first.merge_prompt));
      call.weights.push_back(batch[i].first.merge_weight);
      batch[i].second.merged = static_cast<uint32_t>(members.size());
      call.members.emplace_back(std::move(batch[i].first.promise), std::move(batch[i].second));
    }
    side_call c;
    c.reply_to = caf::actor_cast<caf::actor>(self);
    c.id = ++st.next_merge_id;
    c.provider = e.provider;
    c.url = e.url;
    c.headers = {"Content-Type: application/json",
                 "x-request-id: tc-batch-" + st.cfg->model + "-" + std::to_string(c.id)};
    c.body = openai::with_model(
        scheduling::merged_body(batch[members.front()].first.merge_body, prompts),
        e.upstream_model);
    c.timeout_ms = e.timeout_ms;
    c.max_answer_bytes = merged_answer_limit;
    if (st.cfg->board) {
      st.cfg->board->live[e.endpoint].in_flight.fetch_add(static_cast<uint32_t>(members.size()),
                                                          std::memory_order_relaxed);
    }
    io_port* port = st.cfg->ports[st.next_port++ % st.cfg->ports.size()];
    st.merges.emplace(c.id, std::move(call));
    port->call(std::move(c));
  }
  for (size_t i = 0; i < batch.size(); ++i)
    if (!merged[i]) batch[i].first.promise.deliver(std::move(batch[i].second));
}

/// A merged call ended: each request gets its part of the answer, or, when the call or its
/// answer failed, a plain grant (it calls on its own).
void on_merged(self_ptr self, side_answer& a) {
  auto& st = self->state;
  auto it = st.merges.find(a.id);
  if (it == st.merges.end()) return;
  batcher_state::merge_call call = std::move(it->second);
  st.merges.erase(it);
  const batcher_endpoint& e = st.cfg->endpoints[call.endpoint];
  const int64_t took_us = std::max<int64_t>(0, now_us() - call.started_us);
  if (st.cfg->board) {
    auto& live = st.cfg->board->live[e.endpoint];
    live.in_flight.fetch_sub(static_cast<uint32_t>(call.members.size()), std::memory_order_relaxed);
    if (e.endpoint < st.cfg->board->health.size()) {
      health_report r;
      r.kind = static_cast<uint8_t>(outcome_of(a.status, a.failure));
      const auto kind = static_cast<routing::outcome_kind>(r.kind);
      if (kind == routing::outcome_kind::ok || kind == routing::outcome_kind::timeout)
        r.latency_ms = static_cast<double>(took_us) / 1e3;
      self->send(st.cfg->board->health[e.endpoint], std::move(r));
    }
  }
  std::vector<scheduling::split_part> parts;
  std::string error;
  const bool ok = a.status == 200 && scheduling::split_answer(a.body, call.weights, parts, error);
  if (st.cfg->metrics) st.cfg->metrics->merged(call.members.size(), ok);
  for (size_t i = 0; i < call.members.size(); ++i) {
    auto& [promise, g] = call.members[i];
    if (ok) {
      g.answer = std::move(parts[i].body);
      g.upstream_us = static_cast<uint64_t>(took_us);
    } else {
      g.merged = 0;
    }
    promise.deliver(std::move(g));
  }
}

/// Expires what waited too long, then releases batches while the window says so and there is
/// capacity, then arms the timer for whatever comes next.
void pump(self_ptr self) {
  auto& st = self->state;
  const int64_t now = now_us();
  for (scheduling::item& it : st.queue->expire(now)) {
    auto h = st.waiting.find(it.id);
    if (h == st.waiting.end()) continue;
    refuse(st, h->second, sched_queue_timeout);
    st.waiting.erase(h);
    report_depth(st, it.priority);
  }
  int64_t next = INT64_MAX;
  while (st.queue->size() > 0) {
    int64_t oldest = now;
    for (int p = 0; p < scheduling::priorities; ++p)
      oldest = std::min(oldest, now - st.queue->oldest_wait_us(p, now));
    int64_t check = INT64_MAX;
    if (!st.window->due(now, st.queue->size(), oldest, st.queue->size(0) > 0, check)) {
      next = std::min(next, check);
      break;
    }
    // One batch: up to max_batch requests, each to an endpoint with capacity.
    const std::vector<bool> healthy_now = healthy_endpoints(st);
    std::vector<std::pair<batcher_state::held, sched_grant>> batch;
    // P0 is popped first whenever one waits, so the next item's class is known before the pop.
    auto next_priority = [&] { return st.queue->size(0) > 0 ? 0 : 1; };
    while (batch.size() < std::max<uint32_t>(1, st.cfg->batch.max_batch) && st.queue->size() > 0 &&
           any_capacity(st, healthy_now, now, next_priority())) {
      std::optional<scheduling::item> it = st.queue->pop(now);
      if (!it) break;
      auto h = st.waiting.find(it->id);
      if (h == st.waiting.end()) continue;  // cannot happen: every queued id is waiting
      report_depth(st, it->priority);
      // A direct grant may take the slot between the look and the take: look again.
      int at = pick_endpoint(st, healthy_now, h->second.order, now, it->priority);
      while (at >= 0 && !st.gate->take(static_cast<size_t>(at), it->priority))
        at = pick_endpoint(st, healthy_now, h->second.order, now, it->priority);
      if (at < 0) {
        // Its order leaves out the endpoints with capacity (a residency rule, or only broken
        // endpoints of its own): it goes back to its line and this release stops until a slot
        // frees.
        const int p = it->priority;
        if (!st.queue->push(std::move(*it))) {
          refuse(st, h->second, sched_queue_full);
          st.waiting.erase(h);
        }
        report_depth(st, p);
        break;
      }
      batcher_state::capacity& c = st.endpoints[at];
      if (!c.bucket.unlimited()) c.bucket.settle(0, h->second.tokens, now);  // may go into debt
      st.granted[it->id] =
          batcher_state::running{static_cast<uint16_t>(at), h->second.tokens, it->priority == 0};
      sched_grant g;
      g.order = std::move(h->second.order);
      auto pos = std::find(g.order.begin(), g.order.end(), static_cast<uint16_t>(at));
      if (pos != g.order.end()) std::rotate(g.order.begin(), pos, pos + 1);
      g.waited_us = static_cast<uint64_t>(std::max<int64_t>(0, now - h->second.enqueued_us));
      batch.emplace_back(std::move(h->second), std::move(g));
      st.waiting.erase(h);
      count_dispatch(st, now);
    }
    if (batch.empty()) {
      next = std::min(next, capacity_back_us(st, now));
      break;
    }
    if (st.cfg->metrics) st.cfg->metrics->batch(batch.size());
    for (auto& [h, g] : batch) {
      g.batch = static_cast<uint32_t>(batch.size());
      if (st.cfg->metrics)
        st.cfg->metrics->dispatched(h.priority, static_cast<double>(g.waited_us) / 1e6);
    }
    deliver(self, batch);
  }
  st.gate->set_held(st.queue->size());
  if (st.queue->size() > 0) next = std::min(next, now + expiry_tick_us);
  if (next != INT64_MAX) arm(self, next, now);
}

}  // namespace

batcher_gate::batcher_gate(const std::vector<batcher_endpoint>& endpoints,
                           const scheduling::batch_settings& batch,
                           std::shared_ptr<routing_board> board,
                           std::shared_ptr<batcher_metrics> metrics)
    : slots_(std::make_unique<slots[]>(endpoints.size())),
      count_(endpoints.size()),
      direct_(batch.max_wait_us == 0),
      board_(std::move(board)),
      metrics_(std::move(metrics)) {
  for (size_t i = 0; i < count_; ++i) {
    slots_[i].max = endpoints[i].max_concurrency;
    slots_[i].p0_reserved = endpoints[i].p0_reserved;
    slots_[i].board_index = endpoints[i].endpoint;
    if (endpoints[i].tokens_per_s > 0) direct_ = false;
  }
}

namespace {

bool fits(uint64_t taken, uint32_t max, uint32_t p0_reserved, int priority) {
  if (max == 0) return true;
  const auto in_flight = static_cast<uint32_t>(taken);
  const auto p0 = static_cast<uint32_t>(taken >> 32);
  if (in_flight >= max) return false;
  return priority == 0 || in_flight - p0 < max - p0_reserved;
}

}  // namespace

bool batcher_gate::has_slot(size_t i, int priority) const {
  const slots& s = slots_[i];
  return fits(s.taken.load(), s.max, s.p0_reserved, priority);
}

bool batcher_gate::take(size_t i, int priority) {
  slots& s = slots_[i];
  const uint64_t one = priority == 0 ? one_p0 + 1 : 1;
  uint64_t taken = s.taken.load();
  while (fits(taken, s.max, s.p0_reserved, priority))
    if (s.taken.compare_exchange_weak(taken, taken + one)) return true;
  return false;
}

bool batcher_gate::give_back(size_t i, bool p0) {
  slots_[i].taken.fetch_sub(p0 ? one_p0 + 1 : 1);
  return held_.load() > 0;
}

bool batcher_gate::healthy(size_t i, int64_t now_ms) const {
  // Half-open endpoints are sorted out by the router's probe slots: the order puts them last
  // unless they hold one.
  if (!board_) return true;
  const auto h = board_->live[slots_[i].board_index].health.load();
  return h->breaker != routing::breaker_state::open && h->retry_after_until_ms <= now_ms;
}

int batcher_gate::try_direct(const std::vector<uint16_t>& order, int priority) {
  if (!direct_ || held_.load() > 0) return -1;
  const int64_t now_ms = health_now_ms();
  for (uint16_t i : order) {
    if (i >= count_ || !healthy(i, now_ms)) continue;
    if (!take(i, priority)) continue;
    direct_grants_.fetch_add(1, std::memory_order_relaxed);
    if (metrics_) {
      metrics_->batch(1);
      metrics_->dispatched(priority, 0);
    }
    return i;
  }
  return -1;  // no healthy endpoint of its order has a slot, or none is healthy: the batcher
}

std::shared_ptr<batcher_gate> make_gate(const batcher_config& cfg) {
  return std::make_shared<batcher_gate>(cfg.endpoints, cfg.batch, cfg.board, cfg.metrics);
}

caf::behavior batcher(caf::stateful_actor<batcher_state>* self,
                      std::shared_ptr<const batcher_config> cfg) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  st.queue = std::make_unique<scheduling::priority_queue>(st.cfg->queue);
  st.window = std::make_unique<scheduling::batch_window>(st.cfg->batch);
  st.endpoints.resize(st.cfg->endpoints.size());
  st.gate = st.cfg->gate ? st.cfg->gate : make_gate(*st.cfg);
  const int64_t start = now_us();
  for (size_t i = 0; i < st.endpoints.size(); ++i) {
    const double rate = st.cfg->endpoints[i].tokens_per_s;
    if (rate > 0) st.endpoints[i].bucket.set_rate(rate, rate, start);
  }
  return {
      [self](sched_ask& a) -> caf::typed_response_promise<sched_grant> {
        auto& st = self->state;
        const int64_t now = now_us();
        auto promise = self->make_response_promise<sched_grant>();
        batcher_state::held h;
        h.promise = promise;
        h.order = std::move(a.order);
        h.enqueued_us = now;
        h.tokens = std::max<uint32_t>(1, a.tokens);
        h.priority = std::min<uint8_t>(a.priority, scheduling::priorities - 1);
        h.merge_key = a.merge_key;
        h.merge_body = std::move(a.merge_body);
        h.merge_prompt = std::move(a.merge_prompt);
        h.merge_weight = a.merge_weight;
        scheduling::item it;
        it.id = a.id;
        it.priority = h.priority;
        it.tenant = std::move(a.tenant);
        it.cost = h.tokens;
        it.enqueued_us = now;
        st.window->arrived(now);
        if (st.queue->size() >= st.queue->settings().max_depth) shed_for(st, h.priority);
        if (st.waiting.count(a.id) != 0 || !st.queue->push(std::move(it))) {
          refuse(st, h, sched_queue_full);
          return promise;
        }
        report_depth(st, h.priority);
        st.waiting.emplace(a.id, std::move(h));
        st.gate->set_held(st.queue->size());  // before pump() looks for slots (batcher_gate)
        pump(self);
        return promise;
      },
      [self](sched_done& d) {
        auto& st = self->state;
        auto it = st.granted.find(d.id);
        if (it == st.granted.end()) return;
        batcher_state::capacity& c = st.endpoints[it->second.endpoint];
        st.gate->give_back(it->second.endpoint, it->second.p0);
        if (!c.bucket.unlimited()) c.bucket.settle(it->second.tokens, d.used_tokens, now_us());
        st.granted.erase(it);
        if (st.queue->size() > 0) pump(self);
      },
      [self](sched_cancel& c) {
        auto& st = self->state;
        auto h = st.waiting.find(c.id);
        if (h == st.waiting.end() || !st.queue->remove(c.id)) return;  // granted, or gone
        const int p = h->second.priority;
        sched_grant g;
        g.refused = sched_cancelled;
        h->second.promise.deliver(std::move(g));
        st.waiting.erase(h);
        st.gate->set_held(st.queue->size());
        report_depth(st, p);
      },
      [self](side_answer& a) { on_merged(self, a); },
      [self](sched_freed_atom) {
        if (self->state.queue->size() > 0) pump(self);
      },
      [self](sched_pump_atom) {
        auto& st = self->state;
        st.timer_at_us = INT64_MAX;  // this one or an earlier one: pump() arms what is needed
        pump(self);
      },
  };
}

}  // namespace tc::actors
