// tcbench affinity: steady load through a node whose model is served by several replicas with
// prefix_affinity, most requests sharing one system prompt. Reports each replica's share of the
// answers and its mean requests in flight (sampled from the node's metrics), against the mean.
#pragma once

#include <cstdint>
#include <string>

namespace tc::bench {

struct affinity_args {
  std::string target;  ///< the node's data port, HOST:PORT (loopback)
  std::string admin;   ///< the node's admin port, HOST:PORT (metrics)
  std::string model = "sim-chat";
  uint32_t clients = 64;
  double seconds = 15;
  double shared = 0.8;    ///< share of requests with the one shared system prompt
  uint32_t prompts = 16;  ///< distinct system prompts of the other requests
  uint32_t max_tokens = 16;
  double bound = 1.25;  ///< exit 1 when a replica's mean load exceeds this x the mean
};

/// Runs the load and prints the report; 0 when no request failed and every replica's mean load
/// stayed within `bound` x the mean.
int run_affinity(const affinity_args& a, const std::string& command_line);

}  // namespace tc::bench
