// Exact prompt token counts from a HuggingFace tokenizer.json with a byte-level BPE model (the
// GPT-2 / Qwen / Llama 3 / DeepSeek family), for context protection where the estimate is not
// close enough. Pure (the caller reads the file); a built counter is immutable and thread-safe.
//
// What is implemented, as HuggingFace tokenizers does it (checked against it, see
// tests/protocol/scheduling_vocab.cpp):
// - added tokens: split out of the text first (leftmost-longest), 1 token each; those marked
//   `normalized` are matched after normalization;
// - normalizer: null, NFC, NFD, NFKC, NFKD, or a Sequence of them (protocol/text/unicode);
// - pre-tokenizer: Split (Regex or String pattern; behavior Isolated, or Removed with or
//   without invert) any number of times, then ByteLevel (add_prefix_space, use_regex = the
//   GPT-2 pattern), alone or in a Sequence. Regexes run on protocol/text/regex (Oniguruma's
//   syntax and semantics, as HuggingFace's; a pattern using what it lacks is refused; past its
//   step budget the rest of a piece is one pre-token). The Unicode tables are 14.0, as
//   Oniguruma 6.9.8's: characters assigned later may split or normalize differently;
// - model: BPE with vocab and merges ("a b" strings or [a, b] pairs), ignore_merges; every
//   byte's symbol must be in the vocab.
// Anything else (another model type, dropout, byte_fallback, subword prefixes or suffixes,
// other normalizers or pre-tokenizers, added tokens with lstrip/rstrip/single_word) is refused
// when the counter is built, never approximated.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "protocol/scheduling/context.hpp"

namespace tc::scheduling {

class vocab_counter final : public token_counter {
 public:
  /// Builds a counter from the text of a tokenizer.json. Null, with `error` saying why, when
  /// the text is not such a file or uses a feature not implemented here.
  static std::unique_ptr<const vocab_counter> from_json(std::string_view tokenizer_json,
                                                        std::string& error);
  ~vocab_counter() override;

  /// Tokens of `utf8_text` as the tokenizer encodes it without special tokens added around it.
  uint32_t count(std::string_view utf8_text) const override;
  /// 1, times 3 for each canonical and 11 for each compatibility normalizer (the most UTF-8
  /// bytes one code point's normal form takes per byte of it: U+1D160, U+FDFA), times 2 with
  /// ByteLevel's add_prefix_space (a space before every piece).
  uint32_t max_tokens_per_byte() const override;
  /// Entries of model.vocab.
  size_t vocab_size() const;

  struct impl;

 private:
  explicit vocab_counter(std::unique_ptr<impl> i);
  std::unique_ptr<impl> impl_;
};

}  // namespace tc::scheduling
