// The bounded entry table of one cache shard. Records live in a node-based hash map by key (their
// addresses never move); an id map points into it; two indexed 4-ary min-heaps order the records
// by GDSF priority (every record) and by expiry time (only records that expire). Every operation
// is O(log n) but remove_if, which visits every record by nature, and a put that must evict k
// records for a large one (O(k log n)). The indexes hold exactly the live records (the expiry heap
// only those that expire) and are reserved for max_entries at construction (48 bytes per allowed
// entry, capped at 4M entries), so memory is fixed and no put stalls on a rehash.
//
// Contract notes beyond the header:
// - The on_remove callback runs synchronously inside put/get/get_by_id/expire/remove_if. It must
//   not call back into the store (checked by assert in debug builds) and should not throw (if it
//   does, the record is still removed, the store stays consistent and the exception propagates,
//   ending the operation in progress).
// - A record with expires_ms != 0 is expired from now_ms >= expires_ms on.
// - max_entries == 0 stores nothing: put() returns 0.
// - The destructor does NOT call on_remove: whoever destroys the store drops its indexes too.
// - A pointer from get()/get_by_id() is valid until the next non-const call on the store.
// - put() keeps r.hits as given (0 for a fresh answer; a migrated record may bring its count).
// - put() evicts to make room BEFORE inserting, so the record being stored is never its own
//   victim and on_remove never names an id that put() has not returned yet.
// - Priority scale: the value term (1 + hits) * (1 + cost) / charge ranges from ~1e-6 (free, 1 MB)
//   to well past 1e10 (hot, costly, small). It is capped at kValueCap so one record cannot push
//   the clock arbitrarily far, and when the clock passes kRenormAt every priority is shifted down
//   by the clock (O(n), at most once per kRenormAt / kValueCap = 1024 evictions, in practice far
//   rarer), so a double keeps ~1e-8 resolution for the smallest values.
#include "actors/cache_store.hpp"

#include <algorithm>
#include <cassert>
#include <initializer_list>
#include <limits>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace tc::actors {

namespace {

constexpr std::size_t npos = std::numeric_limits<std::size_t>::max();
/// Largest GDSF value term; beyond it records are ordered by recency alone.
constexpr double kValueCap = 65536.0;  // 2^16
/// Clock at which all priorities are shifted back towards zero.
constexpr double kRenormAt = 67108864.0;  // 2^26: ulp 1.5e-8
/// Indexes are reserved for at most this many entries up front; beyond it they grow on demand.
constexpr std::size_t kReserveLimit = std::size_t{1} << 22;
/// Strings with more unused capacity than this are shrunk on put (charge counts sizes).
constexpr std::size_t kSlackAllowed = 32;

}  // namespace

struct cache_store::impl {
  struct node {
    cache_record rec;
    std::size_t charge = 0;
    std::size_t prio_pos = npos;  ///< slot in prio_
    std::size_t exp_pos = npos;   ///< slot in exp_, npos when the record never expires
    uint64_t touched = 0;         ///< put/hit sequence number: ties leave least recent first
  };
  static uint64_t by_touch(const node& n) { return n.touched; }
  static uint64_t by_id(const node& n) { return n.rec.id; }

  /// An indexed 4-ary min-heap of (Key, node*), equal keys ordered by Tie (smaller first; it may
  /// change only together with the key, through update()). Each node knows its slot (member Pos),
  /// so any node can be re-keyed or removed in O(log n).
  template <class Key, std::size_t node::*Pos, uint64_t (*Tie)(const node&)>
  class heap {
   public:
    struct slot {
      Key key;
      node* n;
    };

    void reserve(std::size_t n) { v_.reserve(n); }
    bool empty() const { return v_.empty(); }
    const slot& top() const { return v_.front(); }

    void push(Key k, node* n) {
      v_.push_back(slot{k, n});
      sift_up(v_.size() - 1);
    }
    void erase(node* n) {
      const std::size_t i = n->*Pos;
      assert(i < v_.size() && v_[i].n == n);
      n->*Pos = npos;
      const std::size_t last = v_.size() - 1;
      if (i != last) {
        v_[i] = v_[last];
        v_.pop_back();
        fix(i);
      } else {
        v_.pop_back();
      }
    }
    void update(node* n, Key k) {
      const std::size_t i = n->*Pos;
      v_[i].key = k;
      fix(i);
    }
    /// Applies `f` to every key (it must keep their order, ties allowed), then restores the heap.
    template <class F>
    void rekey_all(F f) {
      for (auto& s : v_) s.key = f(s.key);
      if (v_.size() < 2) return;
      for (std::size_t i = (v_.size() - 2) / 4 + 1; i-- > 0;) sift_down(i);
    }

   private:
    static bool before(const slot& a, const slot& b) {
      if (a.key != b.key) return a.key < b.key;
      return Tie(*a.n) < Tie(*b.n);
    }
    void place(std::size_t i, const slot& s) {
      v_[i] = s;
      s.n->*Pos = i;
    }
    void fix(std::size_t i) {
      if (i > 0 && before(v_[i], v_[(i - 1) / 4])) {
        sift_up(i);
      } else {
        sift_down(i);
      }
    }
    void sift_up(std::size_t i) {
      const slot s = v_[i];
      while (i > 0) {
        const std::size_t p = (i - 1) / 4;
        if (!before(s, v_[p])) break;
        place(i, v_[p]);
        i = p;
      }
      place(i, s);
    }
    void sift_down(std::size_t i) {
      const slot s = v_[i];
      const std::size_t n = v_.size();
      for (;;) {
        const std::size_t first = 4 * i + 1;
        if (first >= n) break;
        const std::size_t end = std::min(first + 4, n);
        std::size_t best = first;
        for (std::size_t c = first + 1; c < end; ++c)
          if (before(v_[c], v_[best])) best = c;
        if (!before(v_[best], s)) break;
        place(i, v_[best]);
        i = best;
      }
      place(i, s);
    }

    std::vector<slot> v_;
  };

  /// Per-entry bytes besides the four strings' contents, on x86-64 libstdc++ + glibc malloc:
  /// the key-map node (next pointer, digest, node) with its malloc header and bucket pointer, the
  /// id-map node (32 with header) and its bucket pointer, two heap slots, and the malloc headers of
  /// body and extra (scope/model are usually short enough for the small-string buffer). It comes
  /// to 400 here; malloc statistics at 1M entries showed ~330 real, so bytes() errs high.
  static constexpr std::size_t entry_overhead =
      sizeof(void*) + sizeof(canonical::digest) + sizeof(node) + 16 + 8 + 32 + 8 +
      2 * sizeof(heap<double, &node::prio_pos, by_touch>::slot) + 2 * 16;

  impl(limits lim, on_remove cb) : lim_(lim), cb_(std::move(cb)) {
    // Sized once for the bound, so no put ever pays for a rehash or a regrowth (a 1M-entry
    // rehash stalls the actor for ~150 ms): 48 bytes per allowed entry, allocated up front.
    const std::size_t n = std::min(lim_.max_entries, kReserveLimit);
    by_key_.reserve(n);
    by_id_.reserve(n);
    prio_.reserve(n);
    exp_.reserve(n);
  }

  static bool is_expired(const cache_record& r, uint64_t now_ms) {
    return r.expires_ms != 0 && r.expires_ms <= now_ms;
  }

  static double value(const cache_record& r, std::size_t charge) {
    const double v = (1.0 + static_cast<double>(r.hits)) *
                     (1.0 + static_cast<double>(r.cost_micros)) / static_cast<double>(charge);
    return std::min(v, kValueCap);
  }

  /// Unlinks `n` from every index, tells the owner, then destroys it.
  void remove(node* n, removal why) {
    prio_.erase(n);
    if (n->exp_pos != npos) exp_.erase(n);
    by_id_.erase(n->rec.id);
    bytes_ -= n->charge;
    if (why == removal::evicted) ++evictions_;
    const canonical::digest key = n->rec.key;
    struct finish {
      impl& self;
      const canonical::digest& key;
      ~finish() {
        self.in_callback_ = false;
        self.by_key_.erase(key);
      }
    } done{*this, key};
    in_callback_ = true;
    if (cb_) cb_(n->rec, why);
  }

  /// A lookup that found `n`: an expired record leaves, a live one counts a hit.
  const cache_record* touch(node* n, uint64_t now_ms) {
    if (is_expired(n->rec, now_ms)) {
      remove(n, removal::expired);
      return nullptr;
    }
    if (n->rec.hits < std::numeric_limits<uint32_t>::max()) ++n->rec.hits;
    n->touched = ++touch_seq_;
    prio_.update(n, clock_ + value(n->rec, n->charge));
    return &n->rec;
  }

  /// Evicts the lowest priority records until one more record of `charge` bytes fits.
  void make_room(std::size_t charge) {
    while (!prio_.empty() &&
           (by_key_.size() + 1 > lim_.max_entries || bytes_ + charge > lim_.max_bytes)) {
      const auto victim = prio_.top();
      clock_ = std::max(clock_, victim.key);
      remove(victim.n, removal::evicted);
    }
    if (clock_ >= kRenormAt) renormalise();
  }

  /// Shifts every priority down by the clock; order is kept (subtraction is monotonic).
  void renormalise() {
    const double c = clock_;
    prio_.rekey_all([c](double p) { return std::max(0.0, p - c); });
    clock_ = 0;
  }

  limits lim_;
  on_remove cb_;
  std::unordered_map<canonical::digest, node> by_key_;
  std::unordered_map<uint64_t, node*> by_id_;
  heap<double, &node::prio_pos, by_touch> prio_;  ///< every record, by GDSF priority
  heap<uint64_t, &node::exp_pos, by_id> exp_;     ///< records that expire, by expires_ms
  uint64_t touch_seq_ = 0;
  std::size_t bytes_ = 0;
  uint64_t next_id_ = 1;
  uint64_t evictions_ = 0;
  double clock_ = 0;
  bool in_callback_ = false;
};

cache_store::cache_store(limits lim, on_remove cb)
    : impl_(std::make_unique<impl>(lim, std::move(cb))) {}

cache_store::~cache_store() = default;

std::size_t cache_store::charge(const cache_record& r) {
  return r.body.size() + r.extra.size() + r.scope.size() + r.model.size() + r.body_digest.size() +
         impl::entry_overhead;
}

uint64_t cache_store::put(cache_record r, uint64_t now_ms) {
  auto& s = *impl_;
  assert(!s.in_callback_ && "on_remove must not re-enter the store");
  const std::size_t c = charge(r);
  if (c > s.lim_.max_bytes || s.lim_.max_entries == 0) return 0;
  if (auto it = s.by_key_.find(r.key); it != s.by_key_.end())
    s.remove(&it->second, removal::replaced);
  s.make_room(c);
  for (std::string* str : {&r.body, &r.extra, &r.scope, &r.model})
    if (str->capacity() - str->size() > kSlackAllowed) str->shrink_to_fit();
  r.id = s.next_id_++;
  r.stored_ms = now_ms;
  auto [it, inserted] = s.by_key_.try_emplace(r.key);
  assert(inserted);
  impl::node& n = it->second;
  n.rec = std::move(r);
  n.charge = c;
  n.touched = ++s.touch_seq_;
  s.by_id_.emplace(n.rec.id, &n);
  s.prio_.push(s.clock_ + impl::value(n.rec, c), &n);
  if (n.rec.expires_ms != 0) s.exp_.push(n.rec.expires_ms, &n);
  s.bytes_ += c;
  return n.rec.id;
}

const cache_record* cache_store::get(const canonical::digest& key, uint64_t now_ms) {
  auto& s = *impl_;
  assert(!s.in_callback_ && "on_remove must not re-enter the store");
  auto it = s.by_key_.find(key);
  if (it == s.by_key_.end()) return nullptr;
  return s.touch(&it->second, now_ms);
}

const cache_record* cache_store::get_live(const canonical::digest& key, uint64_t now_ms) {
  auto& s = *impl_;
  assert(!s.in_callback_ && "on_remove must not re-enter the store");
  auto it = s.by_key_.find(key);
  if (it == s.by_key_.end() || impl::is_expired(it->second.rec, now_ms)) return nullptr;
  return s.touch(&it->second, now_ms);
}

const cache_record* cache_store::get_by_id(uint64_t id, uint64_t now_ms) {
  auto& s = *impl_;
  assert(!s.in_callback_ && "on_remove must not re-enter the store");
  auto it = s.by_id_.find(id);
  if (it == s.by_id_.end()) return nullptr;
  return s.touch(it->second, now_ms);
}

std::size_t cache_store::remove_if(const std::function<bool(const cache_record&)>& pred) {
  auto& s = *impl_;
  assert(!s.in_callback_ && "on_remove must not re-enter the store");
  std::size_t removed = 0;
  for (auto it = s.by_key_.begin(); it != s.by_key_.end();) {
    auto next = std::next(it);  // erasing `it` leaves other iterators valid
    if (pred(it->second.rec)) {
      s.remove(&it->second, removal::invalidated);
      ++removed;
    }
    it = next;
  }
  return removed;
}

std::size_t cache_store::expire(uint64_t now_ms, std::size_t budget) {
  auto& s = *impl_;
  assert(!s.in_callback_ && "on_remove must not re-enter the store");
  std::size_t removed = 0;
  while (removed < budget && !s.exp_.empty() && s.exp_.top().key <= now_ms) {
    s.remove(s.exp_.top().n, removal::expired);
    ++removed;
  }
  return removed;
}

std::size_t cache_store::entries() const {
  return impl_->by_key_.size();
}

std::size_t cache_store::bytes() const {
  return impl_->bytes_;
}

uint64_t cache_store::evictions() const {
  return impl_->evictions_;
}

}  // namespace tc::actors
