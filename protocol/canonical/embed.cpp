#include "protocol/canonical/embed.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>

#include "protocol/mix.hpp"

// Features, each hashed to one signed component (the low 32 bits of the hash pick the
// component, bit 63 the sign, so colliding features cancel on average instead of piling up):
//   - each word, lower-cased (ASCII only; other bytes are kept), weight word_weight;
//   - each pair of consecutive words, weight bigram_weight;
//   - each character 3-, 4- and 5-gram of a word wrapped in boundary marks. A word's n-grams
//     share an L2 weight of 4 x char_weight (one word at the defaults): each one weighs
//     4 x char_weight / sqrt(count), so long words do not outweigh short ones.
// Words are runs of ASCII letters and digits and of non-ASCII characters that are not
// punctuation. Each Han, kana or Hangul character is a word on its own, so CJK text gets
// character unigrams and bigrams (and no character n-grams, which would repeat the unigram).
// The hash is ours, not std::hash, so embeddings are the same on every machine and build.

namespace tc::canonical {

namespace {

constexpr uint64_t k_golden = 0x9e3779b97f4a7c15ULL;
constexpr uint64_t k_seed_word = 0x243f6a8885a308d3ULL;
constexpr uint64_t k_seed_bigram = 0x13198a2e03707344ULL;
constexpr uint64_t k_seed_chars = 0xa4093822299f31d0ULL;
constexpr char k_boundary = ' ';  // never inside a word

/// Hash of `n` bytes: 8-byte little-endian words, each folded in through mix64().
uint64_t hash_bytes(const char* p, std::size_t n, uint64_t seed) {
  uint64_t h = mix64(seed ^ (static_cast<uint64_t>(n) * k_golden));
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w = 0;
    for (int j = 7; j >= 0; --j) w = (w << 8) | static_cast<unsigned char>(p[i + j]);
    h = mix64(h ^ w) + k_golden;
  }
  if (i < n) {
    uint64_t w = 0;
    for (std::size_t j = n; j > i; --j) w = (w << 8) | static_cast<unsigned char>(p[j - 1]);
    h = mix64(h ^ w) + k_golden;
  }
  return mix64(h);
}

uint64_t rotl(uint64_t x, int r) {
  return (x << r) | (x >> (64 - r));
}

/// One decoded character: its code point (or the byte itself if the UTF-8 is broken) and
/// how many bytes it took (at least 1, never past the end).
struct utf8_char {
  uint32_t cp = 0;
  uint32_t len = 1;
};

utf8_char decode(const unsigned char* p, std::size_t avail) {
  const unsigned char b = p[0];
  if (b < 0x80) return {b, 1};
  uint32_t len = 0;
  uint32_t cp = 0;
  if ((b & 0xe0) == 0xc0) {
    len = 2;
    cp = b & 0x1f;
  } else if ((b & 0xf0) == 0xe0) {
    len = 3;
    cp = b & 0x0f;
  } else if ((b & 0xf8) == 0xf0) {
    len = 4;
    cp = b & 0x07;
  } else {
    return {b, 1};  // stray continuation byte or invalid lead byte
  }
  if (len > avail) return {b, 1};
  for (uint32_t i = 1; i < len; ++i) {
    if ((p[i] & 0xc0) != 0x80) return {b, 1};
    cp = (cp << 6) | (p[i] & 0x3f);
  }
  return {cp, len};
}

bool is_cjk(uint32_t cp) {
  return (cp >= 0x3040 && cp <= 0x30ff) ||  // hiragana, katakana
         (cp >= 0x31f0 && cp <= 0x31ff) ||  // katakana phonetic extensions
         (cp >= 0x3400 && cp <= 0x4dbf) ||  // Han extension A
         (cp >= 0x4e00 && cp <= 0x9fff) ||  // Han
         (cp >= 0xac00 && cp <= 0xd7af) ||  // Hangul syllables
         (cp >= 0xf900 && cp <= 0xfaff) ||  // Han compatibility
         (cp >= 0x20000 && cp <= 0x3ffff);  // Han extensions B and later
}

bool is_separator(uint32_t cp) {
  if (cp < 0x80) {
    const bool alnum =
        (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
    return !alnum;
  }
  return (cp >= 0x80 && cp <= 0xbf) ||      // C1 controls, Latin-1 punctuation and symbols
         (cp >= 0x2000 && cp <= 0x206f) ||  // general punctuation (curly quotes, dashes)
         (cp >= 0x3000 && cp <= 0x303f) ||  // CJK symbols and punctuation
         (cp >= 0xfe30 && cp <= 0xfe6f) ||  // CJK compatibility and small form punctuation
         (cp >= 0xff01 && cp <= 0xff0f) || (cp >= 0xff1a && cp <= 0xff20) ||
         (cp >= 0xff3b && cp <= 0xff40) || (cp >= 0xff5b && cp <= 0xff65);  // fullwidth punct.
}

/// Fullwidth ASCII letters and digits as their ASCII form (0 if `cp` is not one).
char fullwidth_ascii(uint32_t cp) {
  if (cp >= 0xff10 && cp <= 0xff19) return static_cast<char>('0' + (cp - 0xff10));
  if (cp >= 0xff21 && cp <= 0xff3a) return static_cast<char>('a' + (cp - 0xff21));
  if (cp >= 0xff41 && cp <= 0xff5a) return static_cast<char>('a' + (cp - 0xff41));
  return 0;
}

struct word {
  uint32_t begin = 0;  // into the normalised text
  uint32_t len = 0;
  bool cjk = false;
};

/// Splits `text` into words, appending their normalised bytes to `norm`.
void split_words(std::string_view text, std::string& norm, std::vector<word>& words) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  bool in_word = false;
  auto close_word = [&] {
    if (in_word) words.back().len = static_cast<uint32_t>(norm.size()) - words.back().begin;
    in_word = false;
  };
  auto open_word = [&](bool cjk) {
    words.push_back({static_cast<uint32_t>(norm.size()), 0, cjk});
    in_word = !cjk;
  };
  for (std::size_t i = 0; i < n;) {
    const utf8_char c = decode(p + i, n - i);
    if (const char a = fullwidth_ascii(c.cp); a != 0) {
      if (!in_word) open_word(false);
      norm.push_back(a);
    } else if (is_separator(c.cp)) {
      close_word();
    } else if (is_cjk(c.cp)) {
      close_word();
      open_word(true);
      norm.append(text.data() + i, c.len);
      words.back().len = c.len;
    } else {
      if (!in_word) open_word(false);
      if (c.cp >= 'A' && c.cp <= 'Z') {
        norm.push_back(static_cast<char>(c.cp - 'A' + 'a'));
      } else {
        norm.append(text.data() + i, c.len);
      }
    }
    i += c.len;
  }
  close_word();
}

class accumulator {
 public:
  explicit accumulator(std::vector<float>& out) : out_(out), dim_(out.size()) {}

  void add(uint64_t h, float w) {
    const auto idx = static_cast<std::size_t>(((h & 0xffffffffULL) * dim_) >> 32);
    out_[idx] += (h >> 63) != 0 ? -w : w;
  }

 private:
  std::vector<float>& out_;
  uint64_t dim_;
};

/// Adds the character n-grams of one non-CJK word.
void add_char_ngrams(std::string_view w, float budget, accumulator& acc, std::string& marked,
                     std::vector<uint32_t>& starts) {
  marked.clear();
  marked.push_back(k_boundary);
  marked.append(w);
  marked.push_back(k_boundary);
  starts.clear();
  const auto* p = reinterpret_cast<const unsigned char*>(marked.data());
  for (std::size_t i = 0; i < marked.size();) {
    starts.push_back(static_cast<uint32_t>(i));
    i += decode(p + i, marked.size() - i).len;
  }
  const std::size_t chars = starts.size();
  starts.push_back(static_cast<uint32_t>(marked.size()));
  std::size_t count = 0;
  for (std::size_t n = 3; n <= 5; ++n) count += chars >= n ? chars - n + 1 : 0;
  if (count == 0) return;
  const float weight = budget / std::sqrt(static_cast<float>(count));
  for (std::size_t n = 3; n <= 5; ++n) {
    for (std::size_t s = 0; s + n <= chars; ++s) {
      const std::size_t b = starts[s];
      acc.add(hash_bytes(marked.data() + b, starts[s + n] - b, k_seed_chars), weight);
    }
  }
}

}  // namespace

std::vector<float> embed(std::string_view text, const embed_options& opt) {
  std::vector<float> out(opt.dimension, 0.0f);
  if (opt.dimension == 0 || text.empty()) return out;

  std::string norm;
  norm.reserve(text.size());
  std::vector<word> words;
  split_words(text, norm, words);
  if (words.empty()) return out;

  accumulator acc(out);
  std::string marked;
  std::vector<uint32_t> starts;
  const float char_budget = 4.0f * opt.char_weight;
  uint64_t prev = 0;
  for (std::size_t i = 0; i < words.size(); ++i) {
    const std::string_view w(norm.data() + words[i].begin, words[i].len);
    const uint64_t h = hash_bytes(w.data(), w.size(), k_seed_word);
    if (opt.word_weight != 0.0f) acc.add(h, opt.word_weight);
    if (i > 0 && opt.bigram_weight != 0.0f)
      acc.add(mix64((prev * k_golden) ^ rotl(h, 29) ^ k_seed_bigram), opt.bigram_weight);
    if (!words[i].cjk && char_budget != 0.0f) add_char_ngrams(w, char_budget, acc, marked, starts);
    prev = h;
  }

  double sum = 0;
  for (const float x : out) sum += static_cast<double>(x) * x;
  if (!(sum > 0) || !std::isfinite(sum)) {
    std::fill(out.begin(), out.end(), 0.0f);
    return out;
  }
  const auto scale = static_cast<float>(1.0 / std::sqrt(sum));
  for (float& x : out) x *= scale;
  return out;
}

float dot(const float* a, const float* b, uint32_t n) {
  // Sixteen independent partial sums: the compiler vectorises the inner loop without having
  // to reorder a single sum, and the result is the same whatever the vector width.
  constexpr std::size_t lanes = 16;
  float part[lanes] = {};
  const std::size_t len = n;
  std::size_t i = 0;
  for (; i + lanes <= len; i += lanes) {
    const float* x = a + i;
    const float* y = b + i;
    for (std::size_t j = 0; j < lanes; ++j) part[j] += x[j] * y[j];
  }
  for (std::size_t j = 0; i < len; ++i, ++j) part[j] += a[i] * b[i];
  float sum = 0;
  for (std::size_t j = 0; j < lanes; ++j) sum += part[j];
  return sum;
}

}  // namespace tc::canonical
