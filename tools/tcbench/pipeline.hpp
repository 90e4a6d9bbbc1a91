// tcbench pipeline: the cost of steps 1-2 (auth, admission) inside one process.
#pragma once

#include <cstdint>
#include <string>

namespace tc::bench {

struct pipeline_args {
  uint32_t rounds = 21;                ///< the first warms up; modes interleave each round
  uint32_t requests_per_round = 2000;  ///< per mode
  uint32_t scheduler_threads = 1;
  uint32_t max_seconds = 120;  ///< stop early past this
};

int run_pipeline(const pipeline_args& a, const std::string& command_line);

}  // namespace tc::bench
