// The priority queue of one model (issue 6, DESIGN §2 step 8): P0 strict, P1..P4 shared by
// weighted deficit round-robin in tokens, tenants of a priority round-robin, aging so nothing
// starves. Pure and deterministic (time is passed in); not thread-safe: one owner (the model's
// batcher actor).
//
// Scheduling, in the order pop() applies it:
// - P0 items go first, always (strict). P0 can starve everything else by design: it is meant
//   for a few keys, and admission limits it.
// - Otherwise one of the classes 1..4 is chosen by surplus round-robin, the DRR variant that
//   serves while a class's deficit is positive and lets the last item take it below zero (so
//   the next item's cost need not be known in advance). Deficits count estimated tokens: a
//   class gets weights[p] * quantum_tokens per round, so under saturation the token shares are
//   the weight shares, whatever the item sizes.
// - Within the class, the same round-robin runs over flows with one equal quantum: one flow per
//   tenant (a FIFO of that tenant's items of that priority) and one "aged" flow (below). A
//   tenant's flood only lengthens its own FIFO.
// - Aging: an item of priority p that has waited k * aging_ms counts as priority max(1, p - k).
//   It stays in its tenant's FIFO at p, and the classes it now counts for (p-k .. p-1) may also
//   serve it through their aged flow, which takes the oldest such item (the front of a
//   priority's push order). Aging never lifts an item into P0.
// Starvation: every class has a weight >= 1 and every flow a quantum, so while no P0 item
// waits, an item at a FIFO's front is popped within a bounded number of pops
// (tests/protocol/scheduling_queue.cpp shows it for a never-ending P1 flood).
//
// Bounds: at most max_depth items (push beyond is refused); tenant flows <= items + 3; the
// deadline heap, whose stale entries are dropped lazily, <= 2 * max_depth + 65 entries. pop()
// costs O(#priorities + #tenants with work) at worst and O(1) typically, remove() O(1), push()
// and each expired item O(log max_depth).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace tc::scheduling {

/// P0 (highest, strict) .. P4.
constexpr int priorities = 5;

/// Per-model queue settings. Out-of-range values are clamped, never asserted on.
struct queue_settings {
  uint32_t max_depth = 10'000;  ///< items of all priorities; push beyond is refused
  /// Round-robin quantum per round for P1..P4 as multiples of quantum_tokens (index 0, P0, is
  /// unused: P0 is strict). Clamped to 1..1024: every class keeps a share.
  std::array<uint32_t, priorities> weights{0, 8, 4, 2, 1};
  uint32_t aging_ms = 2'000;     ///< waited this long: served as one priority higher; 0 = off
  uint32_t timeout_ms = 30'000;  ///< deadline of items pushed with deadline_us <= 0
  /// Tokens per unit of weight and per tenant turn; smaller interleaves finer. 1..1'048'576.
  uint32_t quantum_tokens = 1'024;
};

/// One queued request.
struct item {
  uint64_t id = 0;          ///< unique among queued items (the request's id)
  int priority = 4;         ///< 0..4; out of range is clamped
  std::string tenant;       ///< round-robin unit within a priority
  uint32_t cost = 1;        ///< estimated tokens; 0 counts as 1
  int64_t enqueued_us = 0;  ///< monotonic time of the push (aging, waits)
  int64_t deadline_us = 0;  ///< expire() removes it from then on; <= 0: enqueued + timeout_ms
};

/// The queue of one model. See the file comment for the policy.
class priority_queue {
 public:
  explicit priority_queue(queue_settings s = {});

  /// Queues `it`. False when the queue holds max_depth items (the caller answers 503) or an
  /// item with the same id is already queued.
  bool push(item it);
  /// Removes and returns the next item to dispatch, or none when empty. Does not look at
  /// deadlines: call expire() first.
  std::optional<item> pop(int64_t now_us);
  /// Removes and returns every item whose deadline_us <= now_us, earliest deadline first.
  std::vector<item> expire(int64_t now_us);
  /// Removes the item `id` (its client went away). False if it is not queued.
  bool remove(uint64_t id);
  /// Removes and returns the item pushed last at `priority` (a full queue makes room for a
  /// higher priority by shedding it); none if that priority holds nothing or is out of range.
  std::optional<item> remove_newest(int priority);

  /// Items queued, all priorities.
  size_t size() const { return index_.size(); }
  /// Items queued at `priority` as pushed (aging does not move them); 0 if out of range.
  size_t size(int priority) const;
  /// How long the earliest pushed item still queued at `priority` has waited (0 if none).
  int64_t oldest_wait_us(int priority, int64_t now_us) const;

  /// The settings in force, after clamping.
  const queue_settings& settings() const { return settings_; }

 private:
  static constexpr uint32_t none = UINT32_MAX;

  struct node {
    item it;
    uint32_t flow = none;
    uint32_t prev = none, next = none;    ///< in the flow's FIFO
    uint32_t older = none, newer = none;  ///< in the level's push order
  };
  struct flow {
    int level = 0;
    bool aged = false;                  ///< the aged flow of a level (never removed)
    uint32_t head = none, tail = none;  ///< FIFO of nodes (tenant flows only)
    uint32_t prev = none, next = none;  ///< in the level's ring
    int64_t deficit = 0;
  };
  struct level {
    std::unordered_map<std::string, uint32_t> tenants;  ///< tenant -> flow with work
    uint32_t ring = none;  ///< any flow of the ring, where a fresh scan starts
    uint32_t ring_size = 0;
    uint32_t cursor = none;                 ///< flow being served
    bool cursor_fresh = false;              ///< cursor moved there by a removal: not visited yet
    uint32_t aged = none;                   ///< this level's aged flow (levels 1..3)
    uint32_t oldest = none, newest = none;  ///< push order of its nodes
    size_t count = 0;
  };

  /// Per pop: for each class, the level whose front it may serve through its aged flow.
  using aged_fronts = std::array<int, priorities>;

  uint32_t new_node(item&& it);
  uint32_t new_flow(int lvl, bool aged);
  void ring_insert(level& l, uint32_t f);
  void ring_erase(level& l, uint32_t f);
  /// Unlinks node n from its flow, its level and the index; frees an emptied tenant flow.
  item unlink(uint32_t n);
  aged_fronts find_aged(int64_t now_us) const;
  uint32_t pick_flow(int lvl, const aged_fronts& aged);
  int pick_class(const aged_fronts& aged);
  void compact_deadlines();

  queue_settings settings_;
  std::vector<node> nodes_;
  std::vector<uint32_t> free_nodes_;
  std::vector<flow> flows_;
  std::vector<uint32_t> free_flows_;
  std::array<level, priorities> levels_;
  std::array<int64_t, priorities> class_deficit_{};
  int class_cursor_ = 0;                          ///< 0 = none yet, else the class being served
  std::unordered_map<uint64_t, uint32_t> index_;  ///< id -> node
  std::vector<std::pair<int64_t, uint64_t>> deadlines_;  ///< min-heap (deadline, id), lazy
};

}  // namespace tc::scheduling
