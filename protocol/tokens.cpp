// Token estimates without a tokenizer: one pass over the bytes, counting in quarter tokens.
//
// - A word (run of ASCII letters/digits and non-CJK non-ASCII characters, with one leading
//   space) costs 1 quarter per ASCII byte and 2 per other character, and at least 1 token:
//   "a b c" is 3 tokens, "internationalization" 5.
// - A run of ASCII punctuation costs 1 token per 2 characters ("{\"", "\":" are one token
//   each in BPE vocabularies); other whitespace runs (newlines, indentation) 1 token each.
// - CJK ideographs, kana, hangul, CJK punctuation and full-width forms cost 1 token each;
//   characters outside the BMP (emoji) 1 token each.
// Malformed or truncated UTF-8 bytes count as other non-ASCII characters, one per byte.
#include "protocol/tokens.hpp"

#include <array>

namespace tc {

namespace {

enum cls : uint8_t { word, space, white, punct, high };

constexpr std::array<uint8_t, 256> make_classes() {
  std::array<uint8_t, 256> t{};
  for (int c = 0; c < 256; ++c) {
    uint8_t k = punct;  // ASCII punctuation and control characters
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
      k = word;
    } else if (c == ' ') {
      k = space;
    } else if (c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f') {
      k = white;
    } else if (c >= 0x80) {
      k = high;
    }
    t[static_cast<std::size_t>(c)] = k;
  }
  return t;
}

constexpr std::array<uint8_t, 256> classes = make_classes();

bool one_token_char(uint32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) ||  // CJK unified ideographs
         (cp >= 0x3400 && cp <= 0x4DBF) ||  // extension A
         (cp >= 0x3000 && cp <= 0x30FF) ||  // CJK punctuation, hiragana, katakana
         (cp >= 0x3130 && cp <= 0x318F) ||  // hangul compatibility jamo
         (cp >= 0x1100 && cp <= 0x11FF) ||  // hangul jamo
         (cp >= 0xAC00 && cp <= 0xD7AF) ||  // hangul syllables
         (cp >= 0xF900 && cp <= 0xFAFF) ||  // CJK compatibility ideographs
         (cp >= 0xFF00 && cp <= 0xFFEF) ||  // half- and full-width forms
         cp >= 0x10000;                     // supplementary planes: ideographs, emoji
}

}  // namespace

uint32_t estimate_tokens(std::string_view utf8_text) {
  const auto* p = reinterpret_cast<const unsigned char*>(utf8_text.data());
  const auto* end = p + utf8_text.size();
  uint64_t quarters = 0;
  uint64_t word_q = 0;   // quarters of the word being read
  uint64_t punct_n = 0;  // characters of the punctuation run being read
  bool in_white = false;
  bool pending_space = false;  // one space that joins the next word

  auto end_word = [&] {
    if (word_q > 0) quarters += word_q < 4 ? 4 : word_q;
    word_q = 0;
  };
  auto end_punct = [&] {
    quarters += 4 * ((punct_n + 1) / 2);
    punct_n = 0;
  };
  auto end_white = [&] {
    if (in_white) quarters += 4;
    in_white = false;
  };
  auto start_word = [&] {
    if (punct_n > 0) end_punct();
    end_white();
    if (pending_space) ++word_q;  // the leading space is part of the word's token
    pending_space = false;
  };

  while (p < end) {
    const unsigned c = *p;
    switch (classes[c]) {
      case word: {
        if (word_q == 0) start_word();
        const unsigned char* q = p + 1;
        while (q < end && classes[*q] == word) ++q;
        word_q += static_cast<uint64_t>(q - p);
        p = q;
        break;
      }
      case space:
        end_word();
        if (punct_n > 0) end_punct();
        if (pending_space || in_white) {
          in_white = true;  // a run of spaces
          pending_space = false;
        } else {
          pending_space = true;
        }
        ++p;
        break;
      case white:
        end_word();
        if (punct_n > 0) end_punct();
        in_white = true;
        pending_space = false;
        ++p;
        break;
      case punct:
        end_word();
        end_white();
        pending_space = false;
        ++punct_n;
        ++p;
        break;
      default: {  // a non-ASCII lead byte, or a stray continuation byte
        std::size_t len = 0;
        uint32_t cp = 0;
        if (c >= 0xC2 && c <= 0xDF) {
          len = 2;
          cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
          len = 3;
          cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
          len = 4;
          cp = c & 0x07;
        }
        bool ok = len != 0 && static_cast<std::size_t>(end - p) >= len;
        for (std::size_t i = 1; ok && i < len; ++i) {
          if ((p[i] & 0xC0) != 0x80) {
            ok = false;
          } else {
            cp = (cp << 6) | (p[i] & 0x3F);
          }
        }
        if (!ok) len = 1;  // malformed: this byte alone, as an "other" character
        if (ok && one_token_char(cp)) {
          end_word();
          if (punct_n > 0) end_punct();
          end_white();
          pending_space = false;
          quarters += 4;
        } else {
          if (word_q == 0) start_word();
          word_q += 2;
        }
        p += len;
        break;
      }
    }
  }
  end_word();
  if (punct_n > 0) end_punct();
  end_white();
  if (pending_space) quarters += 4;

  const uint64_t tokens = (quarters + 3) / 4;
  if (tokens == 0) return utf8_text.empty() ? 0 : 1;
  return tokens > UINT32_MAX ? UINT32_MAX : static_cast<uint32_t>(tokens);
}

}  // namespace tc
