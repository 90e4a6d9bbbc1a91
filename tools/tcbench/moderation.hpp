// tcbench moderation: what the keywords and pii engines cost on a 4 KB prompt.
#pragma once

#include <string>

namespace tc::bench {

/// Runs the benchmark and prints its report; 0 on success.
int run_moderation(const std::string& command_line);

/// Writes `dir`/lexicon.txt (the same 10,000 terms, under [category] headers) and
/// `dir`/chat.json (a chat request of model "bench-model" whose user message is the clean 4 KB
/// prompt) for scripts/bench moderation. 0 on success.
int write_moderation_inputs(const std::string& dir);

}  // namespace tc::bench
