// A small backtracking regex engine over Unicode code points, written by hand (no library in
// the stack does Unicode regex; ICU is not in it) for the pre-tokenizer patterns of HuggingFace
// tokenizer.json files. Oniguruma's syntax and semantics, as HuggingFace runs them: the leftmost
// match, alternatives tried in order, quantifiers greedy (or lazy with a `?` suffix). UTF-8 in,
// byte offsets out. Pure; a compiled regex is immutable and may be used from any thread.
//
// Supported, and nothing else (anything else fails to compile, with a message):
// - literals, `.` (any code point but \n), escapes \t \n \r \f \v \a \e \xHH \x{H..} \uHHHH and
//   an escaped non-alphanumeric character (\\ \- \[ \] \. \' ...);
// - \s \S (Unicode White_Space), \d \D (Nd), \w \W (Oniguruma's: L, M, Nd, Nl, Pc and a few
//   symbols), \p{..} \P{..} \p{^..} for the General Categories L M N P S Z C, their two-letter
//   subcategories, LC and their long names (Letter, Uppercase_Letter, ...), matched without
//   regard to case, space, '_' or '-';
// - character classes [...] [^...] with ranges and the escapes above (\b inside is U+0008);
// - groups (...) (?:...) (captures are not kept), (?i:...) (?-i:...), and (?i) (?-i) which, in
//   Oniguruma's Ruby syntax, cover the rest of the enclosing group with its later alternatives
//   (a(?i)b|c is a(?i:b|c)); case-insensitive is by simple case folding (no multi-character
//   folds such as "ss" for "ß");
// - alternation |; quantifiers ? * + {n} {n,} {n,m} {,m}, greedy or lazy (`?` suffix), except
//   that {n}? is (?:...{n})? (Ruby syntax);
// - lookahead (?=...) (?!...).
// Not supported: anchors, lookbehind, backreferences, possessive and atomic forms, nested or
// intersected classes, POSIX brackets, scripts and binary properties, other options, and an
// unbounded repeat of something that can match empty.
//
// Backtracking is bounded: one find_all over n code points may take 1024 + 256 * n steps (an
// instruction, or one code point consumed by a repeat). When that runs out, the rest of the text
// from where the current search began is taken as one match and find_all returns false; real
// pre-tokenizer patterns use a few steps per code point.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tc::text {

class regex {
 public:
  struct span {
    size_t begin = 0;  ///< byte offset of the first byte of the match
    size_t end = 0;    ///< byte offset one past its last byte
    bool operator==(const span&) const = default;
  };

  /// Compiles `pattern` (UTF-8). Nothing, with `error` saying what and where, when it uses
  /// something not listed in the file comment or is malformed.
  static std::optional<regex> compile(std::string_view pattern, std::string& error);

  regex(regex&&) noexcept;
  regex& operator=(regex&&) noexcept;
  ~regex();

  /// Appends to `out` the non-empty, non-overlapping matches in `utf8_text`, left to right,
  /// each the leftmost one after the previous (an empty match moves the search on by one code
  /// point, as Oniguruma's does). False when the step budget ran out (see the file comment).
  bool find_all(std::string_view utf8_text, std::vector<span>& out) const;
  /// The leftmost match at or after byte `from` (a code point boundary), empty ones included;
  /// nothing when there is none or the step budget runs out.
  std::optional<span> search(std::string_view utf8_text, size_t from = 0) const;

  struct program;

 private:
  explicit regex(std::unique_ptr<const program> p);
  std::unique_ptr<const program> prog_;
};

}  // namespace tc::text
