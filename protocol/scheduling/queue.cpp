// The per-model priority queue: nodes in a pool, linked into their tenant's FIFO and their
// priority's push order (intrusive lists, so remove() is O(1)); flows in per-priority rings;
// surplus round-robin over classes and over the flows of a class.
#include "protocol/scheduling/queue.hpp"

#include <algorithm>
#include <functional>
#include <limits>

namespace tc::scheduling {

namespace {

constexpr uint32_t max_weight = 1'024;
constexpr uint32_t max_quantum = 1u << 20;

int64_t add_sat(int64_t a, int64_t b) {
  if (b > 0 && a > std::numeric_limits<int64_t>::max() - b) {
    return std::numeric_limits<int64_t>::max();
  }
  return a + b;
}

/// Smallest k >= 1 with deficit + k * quantum > 0, for deficit <= 0 and quantum >= 1.
int64_t visits_needed(int64_t deficit, int64_t quantum) {
  return (-deficit) / quantum + 1;
}

}  // namespace

priority_queue::priority_queue(queue_settings s) : settings_(s) {
  for (int p = 1; p < priorities; ++p) {
    settings_.weights[p] = std::clamp<uint32_t>(settings_.weights[p], 1, max_weight);
  }
  settings_.weights[0] = 0;
  settings_.quantum_tokens = std::clamp<uint32_t>(settings_.quantum_tokens, 1, max_quantum);
  for (int p = 1; p < priorities - 1; ++p) {  // classes 1..3 can serve aged items
    levels_[p].aged = new_flow(p, true);
    ring_insert(levels_[p], levels_[p].aged);
  }
}

uint32_t priority_queue::new_node(item&& it) {
  uint32_t n;
  if (!free_nodes_.empty()) {
    n = free_nodes_.back();
    free_nodes_.pop_back();
    nodes_[n] = node{};
  } else {
    n = static_cast<uint32_t>(nodes_.size());
    nodes_.emplace_back();
  }
  nodes_[n].it = std::move(it);
  return n;
}

uint32_t priority_queue::new_flow(int lvl, bool aged) {
  uint32_t f;
  if (!free_flows_.empty()) {
    f = free_flows_.back();
    free_flows_.pop_back();
    flows_[f] = flow{};
  } else {
    f = static_cast<uint32_t>(flows_.size());
    flows_.emplace_back();
  }
  flows_[f].level = lvl;
  flows_[f].aged = aged;
  return f;
}

// A new flow joins at the end of the current round: just before the cursor.
void priority_queue::ring_insert(level& l, uint32_t f) {
  if (l.ring == none) {
    l.ring = f;
    flows_[f].prev = flows_[f].next = f;
  } else {
    const uint32_t at = l.cursor != none ? l.cursor : l.ring;
    const uint32_t before = flows_[at].prev;
    flows_[f].prev = before;
    flows_[f].next = at;
    flows_[before].next = f;
    flows_[at].prev = f;
  }
  ++l.ring_size;
}

void priority_queue::ring_erase(level& l, uint32_t f) {
  if (--l.ring_size == 0) {
    l.ring = l.cursor = none;
    l.cursor_fresh = false;
    return;
  }
  const uint32_t prev = flows_[f].prev, next = flows_[f].next;
  flows_[prev].next = next;
  flows_[next].prev = prev;
  if (l.ring == f) l.ring = next;
  if (l.cursor == f) {
    l.cursor = next;
    l.cursor_fresh = true;
  }
}

bool priority_queue::push(item it) {
  if (index_.size() >= settings_.max_depth) return false;
  if (index_.find(it.id) != index_.end()) return false;
  it.priority = std::clamp(it.priority, 0, priorities - 1);
  if (it.cost == 0) it.cost = 1;
  if (it.deadline_us <= 0) {
    it.deadline_us = add_sat(it.enqueued_us, int64_t{settings_.timeout_ms} * 1000);
  }
  const uint64_t id = it.id;
  const int64_t deadline = it.deadline_us;
  const int p = it.priority;
  level& l = levels_[p];

  uint32_t f;
  if (auto found = l.tenants.find(it.tenant); found != l.tenants.end()) {
    f = found->second;
  } else {
    f = new_flow(p, false);
    l.tenants.emplace(it.tenant, f);
    ring_insert(l, f);
  }
  const uint32_t n = new_node(std::move(it));
  node& nd = nodes_[n];
  nd.flow = f;
  nd.prev = flows_[f].tail;
  if (flows_[f].tail != none) {
    nodes_[flows_[f].tail].next = n;
  } else {
    flows_[f].head = n;
  }
  flows_[f].tail = n;
  nd.older = l.newest;
  if (l.newest != none) {
    nodes_[l.newest].newer = n;
  } else {
    l.oldest = n;
  }
  l.newest = n;
  ++l.count;

  index_.emplace(id, n);
  deadlines_.emplace_back(deadline, id);
  std::push_heap(deadlines_.begin(), deadlines_.end(), std::greater<>{});
  if (deadlines_.size() > 2 * index_.size() + 64) compact_deadlines();
  return true;
}

item priority_queue::unlink(uint32_t n) {
  node& nd = nodes_[n];
  level& l = levels_[nd.it.priority];
  const uint32_t f = nd.flow;

  if (nd.prev != none) {
    nodes_[nd.prev].next = nd.next;
  } else {
    flows_[f].head = nd.next;
  }
  if (nd.next != none) {
    nodes_[nd.next].prev = nd.prev;
  } else {
    flows_[f].tail = nd.prev;
  }
  if (flows_[f].head == none) {  // the tenant has no more work at this priority
    l.tenants.erase(nd.it.tenant);
    ring_erase(l, f);
    free_flows_.push_back(f);
  }

  if (nd.older != none) {
    nodes_[nd.older].newer = nd.newer;
  } else {
    l.oldest = nd.newer;
  }
  if (nd.newer != none) {
    nodes_[nd.newer].older = nd.older;
  } else {
    l.newest = nd.older;
  }
  --l.count;

  index_.erase(nd.it.id);
  item out = std::move(nd.it);
  nd = node{};
  free_nodes_.push_back(n);
  return out;
}

priority_queue::aged_fronts priority_queue::find_aged(int64_t now_us) const {
  aged_fronts aged;
  aged.fill(-1);
  if (settings_.aging_ms == 0) return aged;
  const int64_t step = int64_t{settings_.aging_ms} * 1000;
  // eff[p]: the class the front of priority p counts for.
  std::array<int, priorities> eff{};
  for (int p = 2; p < priorities; ++p) {
    eff[p] = p;
    if (levels_[p].oldest == none) continue;
    const int64_t waited = now_us - nodes_[levels_[p].oldest].it.enqueued_us;
    if (waited < step) continue;
    const int64_t levels_up = waited / step;
    eff[p] = levels_up >= p - 1 ? 1 : p - static_cast<int>(levels_up);
  }
  for (int q = 1; q < priorities - 1; ++q) {
    int64_t best_enqueued = 0;
    for (int p = q + 1; p < priorities; ++p) {
      if (levels_[p].oldest == none || eff[p] > q) continue;
      const int64_t enqueued = nodes_[levels_[p].oldest].it.enqueued_us;
      if (aged[q] < 0 || enqueued < best_enqueued) {
        aged[q] = p;
        best_enqueued = enqueued;
      }
    }
  }
  return aged;
}

// Surplus round-robin over the 4 classes. A class is active when it has items of its own or
// an aged front it may serve.
int priority_queue::pick_class(const aged_fronts& aged) {
  auto active = [&](int q) { return levels_[q].count > 0 || aged[q] >= 0; };
  auto quantum = [&](int q) {
    return int64_t{settings_.weights[q]} * int64_t{settings_.quantum_tokens};
  };
  auto next = [](int q) { return q == priorities - 1 ? 1 : q + 1; };
  const int cur = class_cursor_;
  if (cur != 0 && active(cur) && class_deficit_[cur] > 0) return cur;

  const int start = cur == 0 ? 1 : next(cur);
  int q = start;
  bool any = false;
  for (int i = 0; i < priorities - 1; ++i, q = next(q)) {
    if (!active(q)) {
      class_deficit_[q] = 0;
      continue;
    }
    any = true;
    class_deficit_[q] += quantum(q);
    if (class_deficit_[q] > 0) return class_cursor_ = q;
  }
  if (!any) return 0;
  // Every active class is still in debt after one round: skip the rounds that serve no one.
  int64_t rounds = std::numeric_limits<int64_t>::max();
  for (int c = 1; c < priorities; ++c) {
    if (active(c)) rounds = std::min(rounds, visits_needed(class_deficit_[c], quantum(c)));
  }
  for (int c = 1; c < priorities; ++c) {
    if (active(c)) class_deficit_[c] += (rounds - 1) * quantum(c);
  }
  q = start;
  for (int i = 0; i < priorities - 1; ++i, q = next(q)) {
    if (!active(q)) continue;
    class_deficit_[q] += quantum(q);
    if (class_deficit_[q] > 0) return class_cursor_ = q;
  }
  return 0;  // unreachable: `rounds` makes one class positive
}

// Surplus round-robin over the flows of one level, each with quantum_tokens per visit.
uint32_t priority_queue::pick_flow(int lvl, const aged_fronts& aged) {
  level& l = levels_[lvl];
  if (l.ring_size == 0) return none;
  auto active = [&](uint32_t f) { return !flows_[f].aged || aged[lvl] >= 0; };
  const int64_t quantum = settings_.quantum_tokens;
  if (l.cursor != none && !l.cursor_fresh && active(l.cursor) && flows_[l.cursor].deficit > 0) {
    return l.cursor;
  }
  const uint32_t start =
      l.cursor == none ? l.ring : (l.cursor_fresh ? l.cursor : flows_[l.cursor].next);
  l.cursor_fresh = false;
  uint32_t f = start;
  bool any = false;
  for (uint32_t i = 0; i < l.ring_size; ++i, f = flows_[f].next) {
    if (!active(f)) {
      flows_[f].deficit = 0;
      continue;
    }
    any = true;
    flows_[f].deficit += quantum;
    if (flows_[f].deficit > 0) return l.cursor = f;
  }
  if (!any) return none;
  int64_t rounds = std::numeric_limits<int64_t>::max();
  f = start;
  for (uint32_t i = 0; i < l.ring_size; ++i, f = flows_[f].next) {
    if (active(f)) rounds = std::min(rounds, visits_needed(flows_[f].deficit, quantum));
  }
  f = start;
  for (uint32_t i = 0; i < l.ring_size; ++i, f = flows_[f].next) {
    if (active(f)) flows_[f].deficit += (rounds - 1) * quantum;
  }
  f = start;
  for (uint32_t i = 0; i < l.ring_size; ++i, f = flows_[f].next) {
    if (!active(f)) continue;
    flows_[f].deficit += quantum;
    if (flows_[f].deficit > 0) return l.cursor = f;
  }
  return none;  // unreachable: `rounds` makes one flow positive
}

std::optional<item> priority_queue::pop(int64_t now_us) {
  if (index_.empty()) return std::nullopt;
  aged_fronts aged;
  aged.fill(-1);
  int lvl = 0;
  if (levels_[0].count == 0) {
    aged = find_aged(now_us);
    lvl = pick_class(aged);
    if (lvl == 0) return std::nullopt;  // unreachable: items are queued
  }
  const uint32_t f = pick_flow(lvl, aged);
  if (f == none) return std::nullopt;  // unreachable: the class is active
  const uint32_t n = flows_[f].aged ? levels_[aged[lvl]].oldest : flows_[f].head;
  const int64_t cost = nodes_[n].it.cost;
  flows_[f].deficit -= cost;
  if (lvl != 0) class_deficit_[lvl] -= cost;
  return unlink(n);
}

std::vector<item> priority_queue::expire(int64_t now_us) {
  std::vector<item> out;
  while (!deadlines_.empty() && deadlines_.front().first <= now_us) {
    const auto [deadline, id] = deadlines_.front();
    std::pop_heap(deadlines_.begin(), deadlines_.end(), std::greater<>{});
    deadlines_.pop_back();
    auto found = index_.find(id);
    if (found == index_.end() || nodes_[found->second].it.deadline_us != deadline) continue;
    out.push_back(unlink(found->second));
  }
  return out;
}

bool priority_queue::remove(uint64_t id) {
  auto found = index_.find(id);
  if (found == index_.end()) return false;
  unlink(found->second);
  return true;
}

std::optional<item> priority_queue::remove_newest(int priority) {
  if (priority < 0 || priority >= priorities) return std::nullopt;
  const uint32_t n = levels_[priority].newest;
  if (n == none) return std::nullopt;
  return unlink(n);
}

void priority_queue::compact_deadlines() {
  deadlines_.clear();
  for (const auto& [id, n] : index_) deadlines_.emplace_back(nodes_[n].it.deadline_us, id);
  std::make_heap(deadlines_.begin(), deadlines_.end(), std::greater<>{});
}

size_t priority_queue::size(int priority) const {
  if (priority < 0 || priority >= priorities) return 0;
  return levels_[priority].count;
}

int64_t priority_queue::oldest_wait_us(int priority, int64_t now_us) const {
  if (priority < 0 || priority >= priorities) return 0;
  const uint32_t n = levels_[priority].oldest;
  if (n == none) return 0;
  return std::max<int64_t>(0, now_us - nodes_[n].it.enqueued_us);
}

}  // namespace tc::scheduling
