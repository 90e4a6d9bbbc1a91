// A 64-bit mixing step: routing's hash points (split, affinity) and the built-in embedder's
// feature hashing. Pure; any thread.
#pragma once

#include <cstdint>

namespace tc {

/// SplitMix64's finalizer: a bijection on 64 bits whose every output bit depends on every input
/// bit, so nearby inputs (small keys, variant indexes) land far apart. The same on every node.
constexpr uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

}  // namespace tc
