// tcbench batching and tcbench flood (issue 6): open-loop loads through a node whose batcher
// queues requests by priority in front of a tcsim endpoint. Requests arrive at fixed rates
// whatever the answers (libcurl multi, one thread); a second thread reads tcsim's /metrics every
// 20 ms for its batch occupancy. Both print Markdown, then one `SUMMARY key=value ...` line for
// scripts/bench. Targets are loopback only. The figures are reported, never asserted: the exit
// code is 0 unless the run itself broke (bad target, tcsim unreadable, not one 200 answer).
//
// Priorities as the node reads them: a key's own priority (admin API "priority"); anonymous
// requests are P2; the header `x-tc-priority: N` may lower a request's priority. The node says
// how long a request waited in its queue in `x-tc-queue-ms`, and answers 503 with error.code
// "queue_full" or "queue_timeout" when its queue refuses or drops one.
#pragma once

#include <cstdint>
#include <string>

namespace tc::bench {

/// Bounds every open-loop run shares.
struct open_loop_bounds {
  uint32_t max_in_flight = 2000;      ///< per class: requests due beyond this are skipped
  uint64_t max_requests = 1'000'000;  ///< all classes together
  double drain_seconds = 30;          ///< answers awaited after the arrivals stop
  double timeout_seconds = 60;        ///< per request
};

/// tcbench batching: interactive and batch traffic at one offered rate.
struct batching_args {
  std::string target;  ///< the node's data port, HOST:PORT (loopback)
  std::string sim;     ///< tcsim behind it, HOST:PORT (loopback): settings and utilisation
  std::string model = "sim-chat";
  double rate = 50;     ///< offered requests per second, both classes together
  double seconds = 20;  ///< arrivals stop after this
  uint32_t max_tokens = 40;
  double interactive_share = 0.2;  ///< the rest is batch traffic, P3 by `x-tc-priority: 3`
  bool completions = false;        ///< single-prompt /v1/completions instead of chat (prompt_array)
  std::string p0_key;              ///< interactive requests carry this key of priority 0 (P0), or
  std::string p1_key;  ///< this key of priority 1 (P1); with neither they are anonymous (P2)
  std::string label;   ///< names the run in the summary line
  open_loop_bounds bounds;
};

/// tcbench flood: a P4 flood at flood_factor x capacity_rps plus a P0 trickle.
struct flood_args {
  std::string target;  ///< the node's data port, HOST:PORT (loopback)
  std::string sim;     ///< tcsim behind it, HOST:PORT (loopback)
  std::string model = "sim-chat";
  double capacity_rps = 0;  ///< what the endpoint completes per second at a full batch
  double flood_factor = 3;
  double p0_rate = 5;  ///< P0 requests per second
  double seconds = 30;
  std::string p0_key;  ///< a key of priority 0
  uint32_t max_tokens = 40;
  double window_seconds = 2;  ///< P4 progress is counted per window of this length
  std::string label;
  open_loop_bounds bounds;
};

/// Runs the batching load and prints its report; 2 on bad arguments, 1 when the run broke.
int run_batching(const batching_args& a, const std::string& command_line);

/// Runs the flood and prints its report; 2 on bad arguments, 1 when the run broke.
int run_flood(const flood_args& a, const std::string& command_line);

}  // namespace tc::bench
