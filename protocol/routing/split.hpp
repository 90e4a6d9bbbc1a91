// Canary and A/B splits (issue 6): which variant a sticky key (a user or API key id) gets, by
// weight, the same on every call and every node. Pure; any thread; keeps no state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace tc::routing {

/// The index in `weights` that `sticky_key` goes to. Weighted rendezvous hashing: each variant i
/// draws u_i in (0,1) from the key's SHA-256 and i, and the smallest -ln(u_i) / weights[i] wins,
/// so a key lands on i with probability weights[i] / sum. Changing the weights moves only the
/// keys it has to: a variant whose weight grows keeps all its keys, and a key leaves variant j
/// for k only if j's weight shrank or k's grew. Changing one weight (or any change between two
/// variants) moves the fewest keys possible; moving weight between two of three or more variants
/// in one step may move a few more. A weight of 0 is never picked; all weights 0 (or none) -> 0.
/// Ties -> the lower index.
size_t pick_sticky(std::string_view sticky_key, const std::vector<uint32_t>& weights);

}  // namespace tc::routing
