// Lookups in the generated tables (unicode_data.cpp) and the normalization algorithm of UAX #15:
// decompose, order non-starters by combining class, compose. The Basic Multilingual Plane's
// General Category and inert flags are unpacked once into flat arrays (128 KiB) on first use.
#include "protocol/text/unicode.hpp"

#include <algorithm>
#include <array>
#include <memory>
#include <vector>

#include "protocol/text/unicode_data.hpp"

namespace tc::text {

namespace {

constexpr char32_t s_base = 0xAC00, l_base = 0x1100, v_base = 0x1161, t_base = 0x11A7;
constexpr uint32_t l_count = 19, v_count = 21, t_count = 28;
constexpr uint32_t n_count = v_count * t_count, s_count = l_count * n_count;

/// The value of the run holding `cp` in a table of (start << shift | value) runs.
uint32_t run_value(const uint32_t* runs, size_t size, int shift, char32_t cp) {
  const uint32_t key = (static_cast<uint32_t>(cp) << shift) | ((1u << shift) - 1);
  const uint32_t* at = std::upper_bound(runs, runs + size, key);
  return at == runs ? 0 : *(at - 1) & ((1u << shift) - 1);
}

/// Per BMP code point: General Category and the inert mask (bits 0-3) << 5.
struct bmp_table {
  std::array<uint16_t, 0x10000> props;
  bmp_table() {
    for (uint32_t cp = 0; cp < 0x10000; ++cp) {
      props[cp] =
          static_cast<uint16_t>(run_value(data::gc_runs, data::gc_runs_size, 5, cp) |
                                run_value(data::inert_runs, data::inert_runs_size, 4, cp) << 5);
    }
  }
};

const bmp_table& bmp() {
  static const std::unique_ptr<const bmp_table> table = std::make_unique<const bmp_table>();
  return *table;
}

uint8_t inert_mask(char32_t cp) {
  if (cp < 0x80) return 0xF;
  if (cp < 0x10000) return static_cast<uint8_t>(bmp().props[cp] >> 5);
  if (cp >= invalid_base) return 0xF;
  return static_cast<uint8_t>(run_value(data::inert_runs, data::inert_runs_size, 4, cp));
}

bool is_inert(char32_t cp, normal_form f) {
  return (inert_mask(cp) >> static_cast<int>(f) & 1) != 0;
}

bool compat(normal_form f) {
  return f == normal_form::nfkd || f == normal_form::nfkc;
}

bool composes(normal_form f) {
  return f == normal_form::nfc || f == normal_form::nfkc;
}

/// Appends the full decomposition of `cp` to `out`, keeping non-starters in canonical order.
void decompose(char32_t cp, bool compat_form, std::vector<char32_t>& out) {
  auto put = [&out](char32_t c) {
    const uint8_t ccc = combining_class(c);
    size_t at = out.size();
    if (ccc != 0) {
      while (at > 0 && combining_class(out[at - 1]) > ccc) --at;
    }
    out.insert(out.begin() + static_cast<ptrdiff_t>(at), c);
  };
  if (cp >= s_base && cp < s_base + s_count) {
    const uint32_t s = cp - s_base;
    put(l_base + s / n_count);
    put(v_base + (s % n_count) / t_count);
    if (s % t_count != 0) put(t_base + s % t_count);
    return;
  }
  const data::decomposition* end = data::decompositions + data::decompositions_size;
  const data::decomposition* d = std::lower_bound(
      data::decompositions, end, cp,
      [](const data::decomposition& e, char32_t c) { return e.cp < static_cast<uint32_t>(c); });
  const uint32_t packed = d == end || d->cp != cp ? 0 : compat_form ? d->compat : d->canonical;
  if (packed == 0) {
    put(cp);
    return;
  }
  for (uint32_t i = 0; i < (packed & 31); ++i) put(data::decomposition_pool[(packed >> 5) + i]);
}

/// The primary composite of (a, b), or 0.
char32_t compose_pair(char32_t a, char32_t b) {
  if (a >= l_base && a < l_base + l_count && b >= v_base && b < v_base + v_count) {
    return s_base + ((a - l_base) * v_count + (b - v_base)) * t_count;
  }
  if (a >= s_base && a < s_base + s_count && (a - s_base) % t_count == 0 && b > t_base &&
      b < t_base + t_count) {
    return a + (b - t_base);
  }
  const data::composition* end = data::compositions + data::compositions_size;
  const data::composition* c =
      std::lower_bound(data::compositions, end, std::pair<uint32_t, uint32_t>(a, b),
                       [](const data::composition& e, const std::pair<uint32_t, uint32_t>& k) {
                         return e.first != k.first ? e.first < k.first : e.second < k.second;
                       });
  return c != end && c->first == a && c->second == b ? c->composite : 0;
}

/// Canonical composition of `cps` in place.
void compose(std::vector<char32_t>& cps) {
  size_t out = 0;
  size_t starter = SIZE_MAX;
  for (size_t i = 0; i < cps.size(); ++i) {
    const char32_t c = cps[i];
    const uint8_t ccc = combining_class(c);
    if (starter != SIZE_MAX) {
      const bool adjacent = out == starter + 1;
      if (adjacent || combining_class(cps[out - 1]) < ccc) {
        if (const char32_t composite = compose_pair(cps[starter], c); composite != 0) {
          cps[starter] = composite;
          continue;
        }
      }
    }
    if (ccc == 0) starter = out;
    cps[out++] = c;
  }
  cps.resize(out);
}

/// Normalizes the stretch `in` (which starts and ends at segment boundaries) into `out`.
void normalize_stretch(std::string_view in, normal_form f, std::vector<char32_t>& cps,
                       std::string& out) {
  cps.clear();
  const char* p = in.data();
  const char* end = p + in.size();
  while (p < end) {
    uint32_t len = 0;
    const char32_t cp = decode_utf8(p, end, len);
    p += len;
    if (cp >= invalid_base) {
      cps.push_back(cp);
    } else {
      decompose(cp, compat(f), cps);
    }
  }
  if (composes(f)) compose(cps);
  for (char32_t c : cps) append_utf8(out, c);
}

}  // namespace

std::string_view unicode_version() {
  return data::unicode_version;
}

gc category(char32_t cp) {
  if (cp < 0x10000) return static_cast<gc>(bmp().props[cp] & 31);
  if (cp > 0x10FFFF) return gc::Cn;
  return static_cast<gc>(run_value(data::gc_runs, data::gc_runs_size, 5, cp));
}

bool is_white_space(char32_t cp) {
  if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
  if (cp > data::white_space[data::white_space_size - 1]) return false;  // CJK and beyond
  for (size_t i = 0; i + 1 < data::white_space_size; i += 2) {
    if (cp < data::white_space[i]) return false;
    if (cp <= data::white_space[i + 1]) return true;
  }
  return false;
}

uint8_t combining_class(char32_t cp) {
  if (cp < 0x300) return 0;
  if (cp > 0x10FFFF) return 0;
  return static_cast<uint8_t>(run_value(data::ccc_runs, data::ccc_runs_size, 8, cp));
}

char32_t simple_fold(char32_t cp) {
  if (cp < 0x80) return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
  const data::case_fold* end = data::case_folds + data::case_folds_size;
  const data::case_fold* f = std::lower_bound(
      data::case_folds, end, cp,
      [](const data::case_fold& e, char32_t c) { return e.cp < static_cast<uint32_t>(c); });
  return f != end && f->cp == cp ? f->folded : cp;
}

char32_t decode_utf8(const char* p, const char* end, uint32_t& len) {
  const auto* s = reinterpret_cast<const unsigned char*>(p);
  const size_t avail = static_cast<size_t>(end - p);
  const unsigned char b0 = s[0];
  len = 1;
  if (b0 < 0x80) return b0;
  auto cont = [&](size_t i) { return i < avail && (s[i] & 0xC0) == 0x80; };
  if (b0 >= 0xC2 && b0 <= 0xDF && cont(1)) {
    len = 2;
    return (b0 & 0x1Fu) << 6 | (s[1] & 0x3Fu);
  }
  if (b0 >= 0xE0 && b0 <= 0xEF && cont(1) && cont(2)) {
    const char32_t cp = (b0 & 0x0Fu) << 12 | (s[1] & 0x3Fu) << 6 | (s[2] & 0x3Fu);
    if (cp >= 0x800 && (cp < 0xD800 || cp > 0xDFFF)) {
      len = 3;
      return cp;
    }
  } else if (b0 >= 0xF0 && b0 <= 0xF4 && cont(1) && cont(2) && cont(3)) {
    const char32_t cp =
        (b0 & 0x07u) << 18 | (s[1] & 0x3Fu) << 12 | (s[2] & 0x3Fu) << 6 | (s[3] & 0x3Fu);
    if (cp >= 0x10000 && cp <= 0x10FFFF) {
      len = 4;
      return cp;
    }
  }
  return invalid_base + b0;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < invalid_base) {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(cp - invalid_base);
  }
}

bool quick_check(std::string_view utf8, normal_form f) {
  const char* p = utf8.data();
  const char* end = p + utf8.size();
  while (p < end) {
    if (static_cast<unsigned char>(*p) < 0x80) {
      ++p;
      continue;
    }
    uint32_t len = 0;
    const char32_t cp = decode_utf8(p, end, len);
    if (!is_inert(cp, f)) return false;
    p += len;
  }
  return true;
}

std::string normalize(std::string_view utf8, normal_form f) {
  std::string out;
  out.reserve(utf8.size() + utf8.size() / 8);
  std::vector<char32_t> cps;
  const char* begin = utf8.data();
  const char* end = begin + utf8.size();
  const char* p = begin;
  // The last inert code point copied: where it starts in the input and in `out`. A stretch to
  // normalize starts there when it is right before it (it may compose with what follows).
  const char* inert_in = nullptr;
  uint32_t inert_len = 0;
  size_t inert_out = 0;
  while (p < end) {
    uint32_t len = 0;
    const char32_t cp = decode_utf8(p, end, len);
    if (is_inert(cp, f)) {
      inert_in = p;
      inert_len = len;
      inert_out = out.size();
      out.append(p, len);
      p += len;
      continue;
    }
    const char* from = p;
    if (inert_in != nullptr && inert_in + inert_len == p) {
      from = inert_in;
      out.resize(inert_out);
    }
    p += len;
    while (p < end) {  // the stretch ends before the next inert code point
      const char32_t next = decode_utf8(p, end, len);
      if (is_inert(next, f)) break;
      p += len;
    }
    normalize_stretch(std::string_view(from, static_cast<size_t>(p - from)), f, cps, out);
    inert_in = nullptr;
  }
  return out;
}

}  // namespace tc::text
