// Consistent hashing with bounded loads: the ring of virtual nodes and the clockwise walk.
#include "protocol/routing/affinity.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

#include "protocol/canonical/hash.hpp"
#include "protocol/mix.hpp"

namespace tc::routing {

namespace {

constexpr uint32_t max_vnodes = 1024;

}  // namespace

affinity_ring::affinity_ring(std::vector<std::string> ids, uint32_t vnodes) : ids_(std::move(ids)) {
  vnodes = std::clamp<uint32_t>(vnodes, 1, max_vnodes);
  ring_.reserve(ids_.size() * vnodes);
  canonical::hasher h;
  for (size_t r = 0; r < ids_.size(); ++r) {
    for (uint32_t v = 0; v < vnodes; ++v) {
      ring_.push_back({h.add(ids_[r]).add(uint64_t{v}).finish().hi, static_cast<uint32_t>(r)});
    }
  }
  std::sort(ring_.begin(), ring_.end(), [](const point& a, const point& b) {
    return a.at != b.at ? a.at < b.at : a.replica < b.replica;
  });
}

size_t affinity_ring::pick(uint64_t key, const std::vector<uint32_t>& loads, double c) const {
  if (ring_.empty()) return no_replica;
  const size_t n = ids_.size();
  auto load = [&](size_t r) -> uint64_t { return r < loads.size() ? loads[r] : 0; };
  uint64_t total = 0;
  for (size_t r = 0; r < n; ++r) total += load(r);
  if (!(c >= 1)) c = 1;
  // ceil(c * (total + 1) / n); at least ceil((total + 1) / n), which the least loaded meets.
  const double bound = std::ceil(c * static_cast<double>(total + 1) / static_cast<double>(n));
  const uint64_t capacity = bound >= 0x1p63 ? UINT64_MAX : static_cast<uint64_t>(bound);

  const uint64_t at = mix64(key);
  auto it = std::lower_bound(ring_.begin(), ring_.end(), at,
                             [](const point& p, uint64_t v) { return p.at < v; });
  size_t i = static_cast<size_t>(it - ring_.begin());
  for (size_t step = 0; step < ring_.size(); ++step, ++i) {
    const uint32_t r = ring_[i % ring_.size()].replica;
    if (load(r) + 1 <= capacity) return r;
  }
  // Unreachable with c >= 1 (the least loaded replica is under the bound); kept total anyway.
  size_t least = 0;
  for (size_t r = 1; r < n; ++r) {
    if (load(r) < load(least)) least = r;
  }
  return least;
}

size_t pick_bounded(uint64_t key, const std::vector<std::string>& replicas,
                    const std::vector<uint32_t>& loads, double c) {
  return affinity_ring(replicas, 64).pick(key, loads, c);
}

}  // namespace tc::routing
