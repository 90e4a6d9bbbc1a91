#include "actors/semantic_index.hpp"

#include <algorithm>
#include <exception>
#include <mutex>
#include <unordered_map>

// hnswlib's SSE prefetches read one link past the end of a link list (nmslib/hnswlib#107,
// #578: four bytes inside malloc's padding, harmless in practice, but AddressSanitizer stops
// on it). Sanitizer builds therefore use hnswlib's plain (unprefetched, scalar) code path.
#if defined(__SANITIZE_ADDRESS__)
#define NO_MANUAL_VECTORIZATION
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NO_MANUAL_VECTORIZATION
#endif
#endif
#include <hnswlib/hnswlib.h>

#include "protocol/canonical/embed.hpp"

// hnswlib 0.6.2 (Debian 12) has no allow_replace_deleted / replace_deleted (they came in 0.7),
// so slot reuse is done here much as 0.7 does it: a marked-deleted slot is relabelled in the
// graph's label table, unmarked, and given the new vector through updatePoint(), which stores
// it and repairs the links around it.
// hnswlib reports failures (out of memory) by throwing: every call into it is caught here, so
// nothing escapes to the owning actor; a failed add leaves the entry out, which a cache
// survives as a miss.

namespace tc::actors {

namespace {

using graph_type = hnswlib::HierarchicalNSW<float>;
using hnswlib::tableint;

/// When a slot takes a new vector, the share of its old neighbours whose links are
/// recomputed. Measured (tcbench, 50k entries, every entry replaced once, then near-duplicate
/// recall@10 at ef 64): 1.0 (what hnswlib 0.7's replace_deleted does) costs 603 µs CPU p50 /
/// 1.8 ms p99 per add for 0.969; 0.25 costs 401 µs / 0.94 ms for 0.971; 0.0 costs 316 µs /
/// 0.61 ms but drops to 0.941.
constexpr float k_update_neighbours = 0.25f;

/// Rough heap cost of one node of a std::unordered_map (two pointers of overhead and the
/// value, rounded to the allocator's 16-byte granule).
template <class Map>
std::size_t map_bytes(const Map& m) {
  const std::size_t node = (sizeof(typename Map::value_type) + 2 * sizeof(void*) + 15) / 16 * 16;
  return m.bucket_count() * sizeof(void*) + m.size() * node;
}

}  // namespace

struct semantic_index::impl {
  semantic_options opt;

  // Flat mode (graph == nullptr): vectors row by row, ids alongside, id -> row.
  std::vector<float> flat_vectors;
  std::vector<uint64_t> flat_ids;
  std::unordered_map<uint64_t, std::size_t> flat_rows;

  // Graph mode. `space` must outlive `graph` (the graph keeps a pointer into it).
  std::unique_ptr<hnswlib::InnerProductSpace> space;
  std::unique_ptr<graph_type> graph;
  std::vector<tableint> free_slots;  // marked-deleted slots; may hold stale (reused) entries
  std::size_t upper_levels = 0;      // sum of element levels, for memory_bytes()

  explicit impl(const semantic_options& o) : opt(o) {}

  const float* flat_row(std::size_t row) const { return flat_vectors.data() + row * opt.dimension; }

  std::size_t live() const {
    if (!graph) return flat_ids.size();
    return graph->cur_element_count - graph->num_deleted_;
  }

  bool want_graph(std::size_t entries) const { return entries >= opt.flat_limit; }

  // --- flat mode --------------------------------------------------------------------------

  void flat_add(uint64_t id, const float* v) {
    const auto it = flat_rows.find(id);
    if (it != flat_rows.end()) {
      std::copy(v, v + opt.dimension, flat_vectors.begin() + it->second * opt.dimension);
      return;
    }
    flat_rows.emplace(id, flat_ids.size());
    flat_ids.push_back(id);
    flat_vectors.insert(flat_vectors.end(), v, v + opt.dimension);
  }

  void flat_remove(uint64_t id) {
    const auto it = flat_rows.find(id);
    if (it == flat_rows.end()) return;
    const std::size_t row = it->second;
    const std::size_t last = flat_ids.size() - 1;
    flat_rows.erase(it);
    if (row != last) {
      std::copy(flat_row(last), flat_row(last) + opt.dimension,
                flat_vectors.begin() + row * opt.dimension);
      flat_ids[row] = flat_ids[last];
      flat_rows[flat_ids[row]] = row;
    }
    flat_ids.pop_back();
    flat_vectors.resize(last * opt.dimension);
  }

  std::vector<hit> flat_search(const float* v, uint32_t k) const {
    std::vector<hit> hits;
    hits.reserve(flat_ids.size());
    for (std::size_t row = 0; row < flat_ids.size(); ++row)
      hits.push_back({flat_ids[row], canonical::dot(v, flat_row(row), opt.dimension)});
    const std::size_t n = std::min<std::size_t>(k, hits.size());
    std::partial_sort(hits.begin(), hits.begin() + n, hits.end(), [](const hit& a, const hit& b) {
      return a.similarity != b.similarity ? a.similarity > b.similarity : a.id < b.id;
    });
    hits.resize(n);
    return hits;
  }

  // --- graph mode -------------------------------------------------------------------------

  /// Moves every flat entry into a new graph. Throws (hnswlib) on allocation failure, leaving
  /// the flat entries in place.
  void to_graph() {
    std::size_t capacity = std::max<std::size_t>(opt.initial_capacity, 16);
    while (capacity < flat_ids.size() + 1) capacity *= 2;
    auto s = std::make_unique<hnswlib::InnerProductSpace>(opt.dimension);
    auto g = std::make_unique<graph_type>(s.get(), capacity, opt.m, opt.ef_construction);
    std::size_t levels = 0;
    for (std::size_t row = 0; row < flat_ids.size(); ++row) {
      const tableint slot = g->addPoint(flat_row(row), flat_ids[row], -1);
      levels += static_cast<std::size_t>(g->element_levels_[slot]);
    }
    space = std::move(s);
    graph = std::move(g);
    upper_levels = levels;
    free_slots.clear();
    std::vector<float>().swap(flat_vectors);
    std::vector<uint64_t>().swap(flat_ids);
    std::unordered_map<uint64_t, std::size_t>().swap(flat_rows);
  }

  /// Moves the live graph entries back into flat mode and drops the graph.
  void to_flat() {
    std::vector<float> vectors;
    std::vector<uint64_t> ids;
    std::unordered_map<uint64_t, std::size_t> rows;
    const std::size_t n = live();
    vectors.reserve(n * opt.dimension);
    ids.reserve(n);
    for (std::size_t slot = 0; slot < graph->cur_element_count; ++slot) {
      const auto t = static_cast<tableint>(slot);
      if (graph->isMarkedDeleted(t)) continue;
      const auto* v = reinterpret_cast<const float*>(graph->getDataByInternalId(t));
      rows.emplace(graph->getExternalLabel(t), ids.size());
      ids.push_back(graph->getExternalLabel(t));
      vectors.insert(vectors.end(), v, v + opt.dimension);
    }
    flat_vectors = std::move(vectors);
    flat_ids = std::move(ids);
    flat_rows = std::move(rows);
    graph.reset();
    space.reset();
    free_slots.clear();
    upper_levels = 0;
  }

  /// A marked-deleted slot to reuse, or none.
  bool pop_free_slot(tableint& out) {
    while (!free_slots.empty()) {
      const tableint t = free_slots.back();
      free_slots.pop_back();
      // A slot is stale if its own id was added back (hnswlib then unmarked it in place).
      if (t < graph->cur_element_count && graph->isMarkedDeleted(t)) {
        out = t;
        return true;
      }
    }
    return false;
  }

  /// Drops stale and repeated entries (a slot whose id was re-added, then removed again, is
  /// listed twice), so the list stays bounded by the deleted slots.
  void compact_free_slots() {
    std::sort(free_slots.begin(), free_slots.end());
    free_slots.erase(std::unique(free_slots.begin(), free_slots.end()), free_slots.end());
    std::erase_if(free_slots, [&](tableint t) { return !graph->isMarkedDeleted(t); });
  }

  void graph_add(uint64_t id, const float* v) {
    const auto known = graph->label_lookup_.find(id);
    if (known != graph->label_lookup_.end()) {
      // Same id again (live: a new vector; deleted: back in its own slot, whose entry in
      // free_slots turns stale).
      const tableint slot = known->second;
      if (graph->isMarkedDeleted(slot)) graph->unmarkDeletedInternal(slot);
      graph->updatePoint(v, slot, k_update_neighbours);
      return;
    }
    tableint slot = 0;
    if (pop_free_slot(slot)) {
      // Relabel the deleted slot, store the vector and repair the links around it.
      graph->label_lookup_.erase(graph->getExternalLabel(slot));
      graph->label_lookup_[id] = slot;
      graph->setExternalLabel(slot, id);
      graph->unmarkDeletedInternal(slot);
      graph->updatePoint(v, slot, k_update_neighbours);
      return;
    }
    if (graph->cur_element_count >= graph->max_elements_)
      graph->resizeIndex(graph->max_elements_ * 2);
    const tableint added = graph->addPoint(v, id, -1);
    upper_levels += static_cast<std::size_t>(graph->element_levels_[added]);
  }

  void graph_remove(uint64_t id) {
    const auto it = graph->label_lookup_.find(id);
    if (it == graph->label_lookup_.end() || graph->isMarkedDeleted(it->second)) return;
    const tableint slot = it->second;
    graph->markDelete(id);
    free_slots.push_back(slot);
    if (free_slots.size() > 2 * graph->num_deleted_ + 64) compact_free_slots();
    // Back to a flat scan once well below the limit (half, so a size hovering around the
    // limit does not rebuild the graph over and over).
    if (opt.flat_limit > 0 && live() < opt.flat_limit / 2) to_flat();
  }

  std::vector<hit> graph_search(const float* v, uint32_t k) const {
    std::vector<hit> hits;
    graph->setEf(std::max<std::size_t>(opt.ef_search, k));
    auto found = graph->searchKnn(v, k);
    hits.resize(found.size());
    // The queue pops the farthest first: fill from the back.
    for (std::size_t i = hits.size(); i > 0; --i) {
      hits[i - 1] = {static_cast<uint64_t>(found.top().second), 1.0f - found.top().first};
      found.pop();
    }
    return hits;
  }

  std::size_t graph_bytes() const {
    const graph_type& g = *graph;
    std::size_t bytes = g.max_elements_ * g.size_data_per_element_;  // vectors, level-0 links
    bytes += upper_levels * g.size_links_per_element_;               // upper-level links
    bytes += g.max_elements_ * (sizeof(char*) + sizeof(int) + sizeof(std::mutex) +
                                sizeof(hnswlib::vl_type));  // per-slot tables, visited list
    bytes += graph_type::max_update_element_locks * sizeof(std::mutex);
    bytes += map_bytes(g.label_lookup_);
    bytes += free_slots.capacity() * sizeof(tableint);
    return bytes;
  }
};

semantic_index::semantic_index(const semantic_options& opt) : impl_(std::make_unique<impl>(opt)) {}
semantic_index::~semantic_index() = default;
semantic_index::semantic_index(semantic_index&&) noexcept = default;
semantic_index& semantic_index::operator=(semantic_index&&) noexcept = default;

void semantic_index::add(uint64_t id, const float* v) {
  impl& s = *impl_;
  if (s.opt.dimension == 0) return;
  try {
    if (!s.graph) {
      const bool is_new = s.flat_rows.find(id) == s.flat_rows.end();
      if (!s.want_graph(s.flat_ids.size() + (is_new ? 1 : 0))) {
        s.flat_add(id, v);
        return;
      }
      s.to_graph();
    }
    s.graph_add(id, v);
  } catch (const std::exception&) {
    // Out of memory inside hnswlib or a container: the entry is not indexed.
  }
}

void semantic_index::remove(uint64_t id) {
  impl& s = *impl_;
  try {
    if (s.graph) {
      s.graph_remove(id);
    } else {
      s.flat_remove(id);
    }
  } catch (const std::exception&) {
    // Only to_flat() allocates; on failure the graph stays, with the entry removed.
  }
}

std::vector<semantic_index::hit> semantic_index::search(const float* v, uint32_t k) const {
  const impl& s = *impl_;
  if (k == 0 || s.opt.dimension == 0 || s.live() == 0) return {};
  try {
    return s.graph ? s.graph_search(v, k) : s.flat_search(v, k);
  } catch (const std::exception&) {
    return {};
  }
}

void semantic_index::set_ef_search(uint32_t ef) {
  impl_->opt.ef_search = ef;
}

std::size_t semantic_index::size() const {
  return impl_->live();
}

std::size_t semantic_index::memory_bytes() const {
  const impl& s = *impl_;
  std::size_t bytes = sizeof(impl);
  if (s.graph) return bytes + s.graph_bytes();
  bytes += s.flat_vectors.capacity() * sizeof(float);
  bytes += s.flat_ids.capacity() * sizeof(uint64_t);
  bytes += map_bytes(s.flat_rows);
  return bytes;
}

}  // namespace tc::actors
