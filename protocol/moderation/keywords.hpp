// Keyword lexicons and their Hyperscan matcher (issue 5, the `keywords` engine).
// A lexicon file is UTF-8 text, one term per line:
//   # a comment            (lines starting with '#', after optional spaces)
//   [violence]             (a category header: terms below belong to it)
//   some term              (leading/trailing spaces trimmed; empty lines skipped)
// Terms before any header belong to the file's default category. Each category's action comes
// from configuration. Pure; any thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/moderation/moderation.hpp"

namespace tc::moderation {

struct lexicon_term {
  std::string text;
  std::string category;
  friend bool operator==(const lexicon_term&, const lexicon_term&) = default;
};

/// Parses one lexicon file's text, appending to `out`. On failure returns false with
/// `error` = "line N: why" (invalid UTF-8, a term over 256 bytes, a malformed header, an empty
/// category name) and leaves `out` unchanged.
bool parse_lexicon(std::string_view text, std::string_view default_category,
                   std::vector<lexicon_term>& out, std::string& error);

/// A compiled, immutable set of terms. Share it by shared_ptr; swap in a new one to reload.
class keyword_matcher {
 public:
  /// Compiles `terms` (duplicates fine; ASCII letters match case-insensitively, other text
  /// byte for byte). A category missing from `actions` gets `fallback`. nullptr with `error`
  /// set on failure. No terms at all is valid and matches nothing.
  static std::shared_ptr<const keyword_matcher> compile(
      const std::vector<lexicon_term>& terms, const std::map<std::string, action>& actions,
      action fallback, std::string& error);

  /// Every occurrence of every term, ordered by (begin, end). Thread-safe: each calling
  /// thread uses its own Hyperscan scratch. Never fails on any input bytes.
  std::vector<hit> scan(std::string_view text) const;

  /// True as soon as a term whose action is `block` occurs (stops scanning at the first one).
  bool blocks(std::string_view text) const;

  size_t size() const;            ///< distinct terms compiled
  size_t max_term_bytes() const;  ///< length of the longest term (the stream hold-back)

  ~keyword_matcher();
  keyword_matcher(const keyword_matcher&) = delete;
  keyword_matcher& operator=(const keyword_matcher&) = delete;

 private:
  keyword_matcher() = default;
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace tc::moderation
