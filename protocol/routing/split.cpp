// Weighted rendezvous hashing for sticky splits (see the header).
#include "protocol/routing/split.hpp"

#include <cmath>

#include "protocol/canonical/hash.hpp"
#include "protocol/mix.hpp"

namespace tc::routing {

size_t pick_sticky(std::string_view sticky_key, const std::vector<uint32_t>& weights) {
  const canonical::digest d = canonical::digest_of(sticky_key);
  size_t best = 0;
  double best_race = INFINITY;
  for (size_t i = 0; i < weights.size(); ++i) {
    if (weights[i] == 0) continue;
    const uint64_t h = mix64(d.hi ^ mix64(d.lo + i));
    const double u = (static_cast<double>(h >> 11) + 0.5) * 0x1p-53;  // in (0,1), never 0
    const double race = -std::log(u) / weights[i];  // exponential with rate weights[i]
    if (race < best_race) {
      best = i;
      best_race = race;
    }
  }
  return best;
}

}  // namespace tc::routing
