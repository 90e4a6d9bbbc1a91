// What tcbench's in-process benchmarks (pipeline, records) share: a quiet actor system with the
// project's message types, and percentiles of their samples.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

#include <caf/all.hpp>

#include "protocol/messages.hpp"

namespace tc::bench {

/// An actor system with `threads` scheduler threads that polls without sleeping and logs nothing.
struct quiet_config : caf::actor_system_config {
  explicit quiet_config(unsigned threads) {
    tc::add_message_types(*this);
    set("scheduler.max-threads", static_cast<size_t>(threads));
    set("work-stealing.moderate-poll-attempts", size_t{0});
    set("logger.file-verbosity", caf::atom("quiet"));
    set("logger.console-verbosity", caf::atom("quiet"));
  }
};

/// The `p`th percentile (0-100) of `v`, nearest rank; 0 for no samples.
inline double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p / 100.0 * static_cast<double>(v.size())))];
}

}  // namespace tc::bench
