// PII detection by hand-written scanning, linear in the text and never reading past it.
//
// Digit numbers are tried at the start of each ASCII digit run (or a '+' of "+86") that does
// not touch an ASCII letter or digit on its left; each attempt looks a bounded number of bytes
// ahead, then the scan moves past the run. Per start, the first kind that fits wins:
//   id_card    17 digits + digit/X/x, contiguous or grouped 6-8-4 by one space or dash;
//   phone      [+86 | +86- | "+86 " | 86] 1[3-9] + 9 digits, contiguous or grouped 3-4-4;
//   bank_card  13-19 digits passing Luhn, contiguous or grouped by 4 (last group 1-4) and not
//              the tail of a longer grouping ("0000 4111 1111 1111 1111" is no card).
// A match must not touch an ASCII letter or digit on its right, nor continue a decimal number
// ("3.14", "1.5") on either side. E-mail addresses are found around each '@'. Where a digit
// match and an e-mail overlap, the one starting first (then the longer) is kept.
#include "protocol/moderation/pii.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <limits>

namespace tc::moderation {

namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_alnum(char c) {
  return is_digit(c) || is_alpha(c);
}

/// The digits of a candidate number, separators removed (at most 19 are ever needed).
struct digit_buf {
  std::array<char, 24> d{};
  size_t n = 0;
  void add(std::string_view s) {
    for (char c : s) {
      if (n < d.size()) d[n++] = c;
    }
  }
  std::string_view view() const { return {d.data(), n}; }
};

class digit_scanner {
 public:
  explicit digit_scanner(std::string_view text) : t_(text) {}

  void run(std::vector<pii_match>& out) {
    size_t i = 0;
    const size_t n = t_.size();
    while (i < n) {
      const char c = t_[i];
      const bool plus = c == '+' && at(i + 1) == '8' && at(i + 2) == '6';
      if (!(is_digit(c) || plus) || !clean_left(i)) {
        ++i;
        continue;
      }
      pii_match m;
      if (try_id(i, m) || try_phone(i, m) || try_bank(i, m)) {
        out.push_back(m);
        i = m.end;
        continue;
      }
      i += plus ? 1 : 0;
      while (i < n && is_digit(t_[i])) ++i;
    }
  }

 private:
  char at(size_t i) const { return i < t_.size() ? t_[i] : '\0'; }

  /// Length of the digit run at `i`, counted up to `cap + 1` so callers stay bounded.
  size_t digits(size_t i, size_t cap = 20) const {
    size_t k = 0;
    while (k <= cap && i + k < t_.size() && is_digit(t_[i + k])) ++k;
    return k;
  }

  /// Nothing alphanumeric (and no "digit.") right before byte `i`.
  bool clean_left(size_t i) const {
    if (i == 0) return true;
    const char p = t_[i - 1];
    if (is_alnum(p)) return false;
    return !(p == '.' && i >= 2 && is_digit(t_[i - 2]));
  }

  /// Nothing alphanumeric (and no ".digit") at byte `j`, the first one after a match.
  bool clean_right(size_t j) const {
    if (j >= t_.size()) return true;
    const char c = t_[j];
    if (is_alnum(c)) return false;
    return !(c == '.' && is_digit(at(j + 1)));
  }

  static bool separator(char c) { return c == ' ' || c == '-'; }

  /// `len` digits at `i`, exactly (the run is not longer).
  bool exact_digits(size_t i, size_t len) const { return digits(i, len) == len; }

  bool emit(pii_kind k, size_t b, size_t e, pii_match& m) const {
    m = pii_match{k, static_cast<uint32_t>(b), static_cast<uint32_t>(e)};
    return true;
  }

  bool try_id(size_t i, pii_match& m) const {
    if (!is_digit(t_[i])) return false;
    const auto check_char = [&](size_t j) {
      return is_digit(at(j)) || at(j) == 'X' || at(j) == 'x';
    };
    const size_t run = digits(i);
    if ((run == 18 || (run == 17 && check_char(i + 17))) && clean_right(i + 18) &&
        valid_id_card(t_.substr(i, 18))) {
      return emit(pii_kind::id_card, i, i + 18, m);
    }
    // 6-8-4 grouping: region, birth date, sequence + check character.
    const char s = at(i + 6);
    if (run != 6 || !separator(s) || !exact_digits(i + 7, 8) || at(i + 15) != s) return false;
    const size_t last = digits(i + 16);
    if (!(last == 4 || (last == 3 && check_char(i + 19))) || !clean_right(i + 20)) return false;
    digit_buf id;
    id.add(t_.substr(i, 6));
    id.add(t_.substr(i + 7, 8));
    id.add(t_.substr(i + 16, 4));
    if (!valid_id_card(id.view())) return false;
    return emit(pii_kind::id_card, i, i + 20, m);
  }

  bool try_phone(size_t i, pii_match& m) const {
    size_t p = i;
    if (t_[i] == '+') {
      p += 3;  // "+86", checked by the caller
      if (separator(at(p)) && is_digit(at(p + 1))) ++p;
    } else if (at(i) == '8' && at(i + 1) == '6' && digits(i) == 13) {
      p += 2;
    }
    if (at(p) != '1' || at(p + 1) < '3' || at(p + 1) > '9') return false;
    const size_t run = digits(p);
    if (run == 11 && clean_right(p + 11)) return emit(pii_kind::phone, i, p + 11, m);
    const char s = at(p + 3);
    if (run == 3 && separator(s) && exact_digits(p + 4, 4) && at(p + 8) == s &&
        exact_digits(p + 9, 4) && clean_right(p + 13)) {
      return emit(pii_kind::phone, i, p + 13, m);
    }
    return false;
  }

  bool try_bank(size_t i, pii_match& m) const {
    if (!is_digit(t_[i])) return false;
    const size_t run = digits(i);
    if (run >= 13 && run <= 19 && clean_right(i + run) && luhn_valid(t_.substr(i, run))) {
      return emit(pii_kind::bank_card, i, i + run, m);
    }
    const char s = at(i + 4);
    if (run != 4 || !separator(s)) return false;
    if (i >= 2 && t_[i - 1] == s && is_digit(t_[i - 2])) return false;  // the tail of a longer one
    digit_buf card;
    size_t p = i;
    for (;;) {
      const size_t g = digits(p, 4);
      if (g == 0 || g > 4 || card.n + g > 19) return false;
      card.add(t_.substr(p, g));
      const bool more = at(p + g) == s && is_digit(at(p + g + 1));
      if (!more) {
        p += g;
        break;
      }
      if (g != 4) return false;
      p += g + 1;
    }
    if (card.n < 13 || !clean_right(p) || !luhn_valid(card.view())) return false;
    return emit(pii_kind::bank_card, i, p, m);
  }

  std::string_view t_;
};

bool local_char(char c) {
  if (is_alnum(c)) return true;
  switch (c) {
    case '.':
    case '_':
    case '%':
    case '+':
    case '-':
      return true;
    default:
      return false;
  }
}

bool label_char(char c) {
  return is_alnum(c) || c == '-';
}

/// An address around the '@' at `at`, if any: local part of 1-64 characters (no leading,
/// trailing or doubled dot), then two or more domain labels, the last one 2+ letters.
bool email_at(std::string_view t, size_t at, pii_match& m) {
  constexpr size_t max_local = 64;
  constexpr size_t max_domain = 253;
  size_t b = at;
  while (b > 0 && local_char(t[b - 1]) && at - b <= max_local) {
    if (t[b - 1] == '.' && b < at && t[b] == '.') break;  // ".." ends the local part
    --b;
  }
  if (at - b > max_local) return false;
  while (b < at && t[b] == '.') ++b;
  if (b == at || t[at - 1] == '.') return false;

  // Labels, each [A-Za-z0-9-]{1,63} without a dash at either end, separated by single dots.
  size_t p = at + 1;
  size_t labels = 0;
  size_t end = 0;  // end of the last label that can close the address (a TLD)
  while (p < t.size() && p - at <= max_domain) {
    size_t q = p;
    bool letters = true;
    while (q < t.size() && label_char(t[q]) && q - p <= 63) {
      letters = letters && is_alpha(t[q]);
      ++q;
    }
    const size_t len = q - p;
    if (len == 0 || len > 63 || t[p] == '-' || t[q - 1] == '-') break;
    ++labels;
    if (labels >= 2 && letters && len >= 2) end = q;
    if (q + 1 < t.size() && t[q] == '.' && label_char(t[q + 1])) {
      p = q + 1;
    } else {
      break;
    }
  }
  if (end == 0) return false;
  m = pii_match{pii_kind::email, static_cast<uint32_t>(b), static_cast<uint32_t>(end)};
  return true;
}

void find_emails(std::string_view t, std::vector<pii_match>& out) {
  size_t from = 0;
  while (from < t.size()) {
    const size_t at = t.find('@', from);
    if (at == std::string_view::npos) break;
    pii_match m;
    if (email_at(t, at, m)) out.push_back(m);
    from = at + 1;
  }
}

int rank(pii_kind k) {
  return static_cast<int>(k);
}

}  // namespace

std::string_view pii_kind_name(pii_kind k) {
  switch (k) {
    case pii_kind::id_card:
      return "id_card";
    case pii_kind::phone:
      return "phone";
    case pii_kind::bank_card:
      return "bank_card";
    case pii_kind::email:
      return "email";
  }
  return "unknown";
}

bool parse_pii_kind(std::string_view name, pii_kind& out) {
  for (pii_kind k : {pii_kind::id_card, pii_kind::phone, pii_kind::bank_card, pii_kind::email}) {
    if (name == pii_kind_name(k)) {
      out = k;
      return true;
    }
  }
  return false;
}

bool luhn_valid(std::string_view digits) {
  if (digits.empty()) return false;
  unsigned sum = 0;
  bool twice = false;
  for (size_t i = digits.size(); i-- > 0;) {
    const char c = digits[i];
    if (!is_digit(c)) return false;
    unsigned d = static_cast<unsigned>(c - '0');
    if (twice) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    twice = !twice;
  }
  return sum % 10 == 0;
}

bool valid_id_card(std::string_view id) {
  if (id.size() != 18) return false;
  for (size_t i = 0; i < 17; ++i) {
    if (!is_digit(id[i])) return false;
  }
  if (id[0] < '1' || id[0] > '8') return false;

  const auto num = [&](size_t pos, size_t len) {
    int v = 0;
    for (size_t i = pos; i < pos + len; ++i) v = v * 10 + (id[i] - '0');
    return v;
  };
  using namespace std::chrono;
  const year_month_day birth{year{num(6, 4)}, month{static_cast<unsigned>(num(10, 2))},
                             day{static_cast<unsigned>(num(12, 2))}};
  const year_month_day today{floor<days>(system_clock::now())};
  if (birth.year() < year{1900} || !birth.ok() || sys_days{birth} > sys_days{today}) {
    return false;
  }

  static constexpr std::array<int, 17> weights{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
  int sum = 0;
  for (size_t i = 0; i < 17; ++i) sum += (id[i] - '0') * weights[i];
  static constexpr std::string_view check = "10X98765432";
  const char expected = check[static_cast<size_t>(sum % 11)];
  const char got = id[17] == 'x' ? 'X' : id[17];
  return got == expected;
}

std::vector<pii_match> find_pii(std::string_view text) {
  // Offsets are 32-bit: a longer text is scanned up to 4 GiB.
  text = text.substr(0, std::numeric_limits<uint32_t>::max());
  std::vector<pii_match> found;
  digit_scanner(text).run(found);
  find_emails(text, found);

  std::sort(found.begin(), found.end(), [](const pii_match& a, const pii_match& b) {
    if (a.begin != b.begin) return a.begin < b.begin;
    if (a.end != b.end) return a.end > b.end;
    return rank(a.kind) < rank(b.kind);
  });
  std::vector<pii_match> out;
  out.reserve(found.size());
  for (const pii_match& m : found) {
    if (out.empty() || m.begin >= out.back().end) out.push_back(m);
  }
  return out;
}

}  // namespace tc::moderation
