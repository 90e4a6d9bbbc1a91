// A small memo of a pure function's recent results, for one thread: what a repeated request
// (the same bytes again, as an exact cache hit usually is) would otherwise parse and hash again.
// Used per thread (thread_local) by openai::parse_request, canonical::make_key and
// audit::recent_digest. Pure; no locking: each thread owns its memo.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "protocol/mix.hpp"

namespace tc {

/// Results by their whole input: a tag (e.g. the endpoint) and `Parts` byte strings, every one
/// compared in full before a result is returned, so a hit is exactly what the function would
/// compute. Direct-mapped by a hash of the input: a slot holds the last result whose input
/// mapped to it. Bounded: k_slots results, inputs up to k_max_bytes in all (larger ones are not
/// kept).
template <class Value, std::size_t Parts>
class recent_results {
 public:
  static constexpr std::size_t k_slots = 64;
  static constexpr std::size_t k_max_bytes = 4096;
  using input = std::array<std::string_view, Parts>;

  /// The result kept for exactly this input, or null.
  const Value* find(uint64_t tag, const input& in) const {
    const slot& s = slots_[index(tag, in)];
    if (!s.used || s.tag != tag) return nullptr;
    for (std::size_t i = 0; i < Parts; ++i)
      if (s.parts[i] != in[i]) return nullptr;
    return &s.value;
  }

  /// Keeps `value` as the result of `in`, in place of what its slot held.
  void keep(uint64_t tag, const input& in, const Value& value) {
    std::size_t bytes = 0;
    for (std::string_view p : in) bytes += p.size();
    if (bytes > k_max_bytes) return;
    slot& s = slots_[index(tag, in)];
    s.used = true;
    s.tag = tag;
    for (std::size_t i = 0; i < Parts; ++i) s.parts[i].assign(in[i]);
    s.value = value;
  }

 private:
  struct slot {
    bool used = false;
    uint64_t tag = 0;
    std::array<std::string, Parts> parts;
    Value value{};
  };

  static std::size_t index(uint64_t tag, const input& in) {
    uint64_t h = mix64(tag);
    for (std::string_view p : in) h = mix64(h ^ std::hash<std::string_view>{}(p));
    return static_cast<std::size_t>(h % k_slots);
  }

  std::array<slot, k_slots> slots_{};
};

}  // namespace tc
