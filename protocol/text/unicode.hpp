// Unicode character properties and normalization, written by hand (no library in the stack does
// them; ICU is not in it) from tables generated out of the Unicode Character Database:
// protocol/text/unicode_data.cpp, Unicode 14.0.0 (scripts/unicode_tables.py). Pure; any thread.
//
// UTF-8 in and out. A byte that does not start a well-formed UTF-8 sequence is decoded as one
// "invalid" code point of its own (0x110000 + the byte; General Category Cn, not white space,
// combining class 0) and encoded back as that byte, so no input byte is ever lost or changed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tc::text {

/// The Unicode version of the tables.
std::string_view unicode_version();

/// General Category values; Cn (unassigned, and invalid bytes) is 0.
// clang-format off
enum class gc : uint8_t {
  Cn, Lu, Ll, Lt, Lm, Lo, Mn, Mc, Me, Nd, Nl, No, Pc, Pd, Ps, Pe, Pi, Pf, Po,
  Sm, Sc, Sk, So, Zs, Zl, Zp, Cc, Cf, Cs, Co
};
// clang-format on
constexpr int gc_count = 30;

/// The General Category of `cp` (Cn beyond U+10FFFF).
gc category(char32_t cp);
/// Unicode's White_Space property (what Oniguruma's \s matches).
bool is_white_space(char32_t cp);
/// The canonical combining class of `cp`.
uint8_t combining_class(char32_t cp);
/// Simple case folding of `cp` (itself when it has none).
char32_t simple_fold(char32_t cp);

constexpr char32_t invalid_base = 0x110000;  ///< invalid byte b decodes as invalid_base + b

/// Decodes the code point at p[0] (p < end), storing its length in bytes (1 to 4) in `len`.
/// Overlong forms, surrogates and values beyond U+10FFFF are invalid: one byte each.
char32_t decode_utf8(const char* p, const char* end, uint32_t& len);
/// Appends `cp` as UTF-8 (an invalid code point as its original byte).
void append_utf8(std::string& out, char32_t cp);

enum class normal_form : uint8_t { nfd, nfc, nfkd, nfkc };

/// True when `utf8` is, by the quick check, already in form `f` (every code point an "inert"
/// starter, e.g. all ASCII). A false answer only means the full algorithm must run.
bool quick_check(std::string_view utf8, normal_form f);
/// `utf8` in form `f`: full canonical (NFD, NFC) or compatibility (NFKD, NFKC) decomposition,
/// canonical ordering, and for NFC/NFKC canonical composition (composition exclusions kept
/// out; Hangul syllables algorithmic). Only the stretches around non-inert code points are
/// worked on; the rest is copied.
std::string normalize(std::string_view utf8, normal_form f);

}  // namespace tc::text
