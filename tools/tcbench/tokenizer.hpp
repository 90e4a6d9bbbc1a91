// tcbench tokenizer: what exact token counting from a tokenizer.json costs (issue 6), against the
// estimator, on ~16 KB of English and of Chinese text generated deterministically.
#pragma once

#include <string>
#include <vector>

namespace tc::bench {

struct tokenizer_args {
  std::vector<std::string> files;  ///< tokenizer.json files; each is built and measured
  unsigned rounds = 200;           ///< count() calls per text and file (the first 5 warm up)
};

/// Runs the benchmark and prints its report; 0 on success, 1 when a file does not build.
int run_tokenizer(const tokenizer_args& a, const std::string& command_line);

}  // namespace tc::bench
