// Nearest-neighbour search over unit-length embeddings (cosine = inner product), for one cache
// namespace: a flat scan while small, an hnswlib HNSW graph once it grows past
// `flat_limit`. Owned by one cache_shard actor: not thread-safe, never blocks.
// This is the only translation unit that includes hnswlib (see FACTS: it cannot be included
// twice in one binary).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace tc::actors {

struct semantic_options {
  uint32_t dimension = 256;
  uint32_t m = 16;  ///< HNSW links per node
  uint32_t ef_construction = 100;
  uint32_t ef_search = 64;
  uint32_t flat_limit = 512;         ///< below this many entries, exact scan instead of HNSW
  uint32_t initial_capacity = 1024;  ///< HNSW grows by doubling from here
};

class semantic_index {
 public:
  explicit semantic_index(const semantic_options& opt);
  ~semantic_index();
  semantic_index(semantic_index&&) noexcept;
  semantic_index& operator=(semantic_index&&) noexcept;

  /// Adds (or replaces) `id` with the unit vector `v` (dimension floats).
  void add(uint64_t id, const float* v);
  /// Removes `id`; unknown ids are ignored. Its slot is reused by later adds.
  void remove(uint64_t id);

  struct hit {
    uint64_t id = 0;
    float similarity = 0;  ///< inner product, in [-1, 1]
  };
  /// Up to `k` live entries nearest to `v`, most similar first.
  std::vector<hit> search(const float* v, uint32_t k) const;

  /// Sets the HNSW search breadth for later searches (a run-time tuning knob; at least k is
  /// always used).
  void set_ef_search(uint32_t ef);

  std::size_t size() const;
  /// Bytes held by vectors, graph links and bookkeeping (an estimate from the structures).
  std::size_t memory_bytes() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace tc::actors
