// tcbench records: the CPU step 13 costs a request in the node's record writer, measured
// inside one process with no sockets: the node's audit writer (detached, as tcnode spawns it)
// with the ledger's book, on an in-memory store, fed an exact cache hit's audit and usage
// records in bursts as the I/O loops send them.
#pragma once

#include <cstdint>
#include <string>

namespace tc::bench {

struct records_args {
  uint32_t rounds = 7;          ///< the first warms up
  uint32_t records = 100'000;   ///< request pairs (audit + usage record) per round
  uint32_t burst = 64;          ///< pairs sent back to back, as one loop burst
  uint32_t max_behind = 1'000;  ///< the sender waits while more pairs than this are unwritten
  uint32_t max_seconds = 120;   ///< stop early past this
};

int run_records(const records_args& a, const std::string& command_line);

}  // namespace tc::bench
