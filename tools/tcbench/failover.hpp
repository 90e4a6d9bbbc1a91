// tcbench failover: steady load through a node whose model has two endpoints; one endpoint's
// process is killed mid-load. Reports what clients saw (errors before a stream began must be
// none), when the dead endpoint's breaker opened, and per second which provider answered.
#pragma once

#include <cstdint>
#include <string>

namespace tc::bench {

struct failover_args {
  std::string target;  ///< the node's data port, HOST:PORT (loopback)
  std::string admin;   ///< the node's admin port, HOST:PORT (metrics)
  std::string model = "sim-chat";
  std::string dead;       ///< the provider whose process is killed
  int kill_pid = 0;       ///< that process
  uint32_t clients = 16;  ///< concurrent clients, one keep-alive connection each
  double seconds = 20;    ///< load duration
  double kill_at_s = 6;   ///< when the process is killed
  uint32_t max_tokens = 32;
};

/// Runs the load, kills `kill_pid` at `kill_at_s`, prints the report; 0 when no client saw an
/// error for a request that had not started streaming and traffic left the dead endpoint.
int run_failover(const failover_args& a, const std::string& command_line);

}  // namespace tc::bench
