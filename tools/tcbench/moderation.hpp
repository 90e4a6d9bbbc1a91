// tcbench moderation: what the keywords and pii engines cost on a 4 KB prompt.
#pragma once

#include <string>

namespace tc::bench {

/// Runs the benchmark and prints its report; 0 on success.
int run_moderation(const std::string& command_line);

}  // namespace tc::bench
