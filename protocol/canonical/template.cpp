// protocol/canonical/template.cpp: the template tier's key and the semantic tier's guards, by
// small hand-written scanners (no regex, no locale, no allocation beyond the outputs). Every
// scanner moves forward only, and each failed look-ahead is remembered or bounded, so the work
// is linear in the query: make_template + make_guard take ~3-5 µs of CPU for 200 characters
// (-O2, this VM), 1-30 ms for 100 KB even when built to defeat the scanners.
//
// The rule behind every choice: a miss costs one upstream call, a wrong hit serves the answer
// to another question. A form is normalised only when that cannot merge two meanings, and is
// kept as written otherwise.
//   - Plain numbers keep their fraction as written: "1.5" != "1.50", because "Python 3.1" and
//     "Python 3.10" are different questions. Money is an amount: "$1.50" == "$1.5" (USD 1.5).
//     "1,000" == "1000": a first group of one to three digits, then groups of exactly three.
//   - A sign glued to a number belongs to it ("-3", "+3") when it follows a space, a start or an
//     opening bracket; after a digit or a letter it is an operator: "2+3" is two numbers, and
//     "2 -3" differs from "2 - 3".
//   - Tokens mixing letters and digits are one id slot, verbatim with their case: "GPT-4",
//     "covid-19", "AB-12345", "2nd", "5kg", "v1.2", "x86_64". The digit is what tells "GPT-4"
//     from "GPT-3", and case can matter in codes. "1.2.3" (a version, an address) is an id,
//     and so is a bare run of 15 to 18 digits (ID card, order and account numbers).
//   - Dates become YYYY-MM-DD only when the order is certain: ISO, month names, 2026年11月21日,
//     and d/m/yyyy or m/d/yyyy when one part exceeds 12 or both are equal. "05/06/2026" is a
//     date slot kept exactly as written.
//   - "¥" is both yen and yuan: it stays "¥ 100", apart from "100元" (CNY) and "100 yen" (JPY).
//     "$" is USD (the contract), so "C$5" and "HK$5" are read as CAD and HKD first.
//   - Phones are reduced to digits, so only unmistakable shapes are phones: a leading "+", an
//     area code in parentheses, or three or more groups joined by one "-" or "." and ending in
//     four digits ("555-123-4567"). "555-1234" stays a subtraction.
//   - A literal "{" in the query is written "{{", so no query text can pass for a placeholder.
//   - Whitespace is ASCII whitespace plus U+00A0 and U+3000 (copy-paste and CJK input).
#include "protocol/canonical/template.hpp"

#include <algorithm>
#include <tuple>
#include <utility>

namespace tc::canonical {

const char* kind_name(slot_kind k) {
  switch (k) {
    case slot_kind::number:
      return "number";
    case slot_kind::date:
      return "date";
    case slot_kind::money:
      return "money";
    case slot_kind::email:
      return "email";
    case slot_kind::phone:
      return "phone";
    case slot_kind::id:
      return "id";
    case slot_kind::quoted:
      return "quoted";
  }
  return "slot";
}

namespace {

constexpr size_t npos = std::string_view::npos;

bool is_digit(unsigned char c) {
  return c >= '0' && c <= '9';
}
bool is_upper(unsigned char c) {
  return c >= 'A' && c <= 'Z';
}
bool is_lower(unsigned char c) {
  return c >= 'a' && c <= 'z';
}
bool is_alpha(unsigned char c) {
  return is_upper(c) || is_lower(c);
}
bool is_alnum(unsigned char c) {
  return is_alpha(c) || is_digit(c);
}
char to_lower(unsigned char c) {
  return static_cast<char>(is_upper(c) ? c + 32 : c);
}

/// The byte at `i`, or 0 past the end: every look-ahead goes through this.
unsigned char byte_at(std::string_view s, size_t i) {
  return i < s.size() ? static_cast<unsigned char>(s[i]) : 0;
}

// Literals here are a few bytes: a loop beats a call to memcmp.
bool starts_with(std::string_view s, size_t i, std::string_view lit) {
  if (i > s.size() || s.size() - i < lit.size()) return false;
  for (size_t k = 0; k < lit.size(); ++k) {
    if (s[i + k] != lit[k]) return false;
  }
  return true;
}

/// ASCII case-insensitive prefix test; `lit` is lower-case.
bool starts_with_ci(std::string_view s, size_t i, std::string_view lit) {
  if (i > s.size() || s.size() - i < lit.size()) return false;
  for (size_t k = 0; k < lit.size(); ++k) {
    if (to_lower(static_cast<unsigned char>(s[i + k])) != lit[k]) return false;
  }
  return true;
}

bool equals_ci(std::string_view s, std::string_view lit) {
  return s.size() == lit.size() && starts_with_ci(s, 0, lit);
}

/// Length of the whitespace character at `i`, 0 if none.
size_t space_len(std::string_view s, size_t i) {
  const unsigned char c = byte_at(s, i);
  if (c == ' ' || (c >= '\t' && c <= '\r')) return 1;
  if (c == 0xC2 && byte_at(s, i + 1) == 0xA0) return 2;                               // U+00A0
  if (c == 0xE3 && byte_at(s, i + 1) == 0x80 && byte_at(s, i + 2) == 0x80) return 3;  // U+3000
  return 0;
}

size_t count_digits(std::string_view s, size_t i) {
  size_t j = i;
  while (is_digit(byte_at(s, j))) ++j;
  return j - i;
}

int small_int(std::string_view s, size_t i, size_t len) {
  int v = 0;
  for (size_t k = 0; k < len; ++k) v = v * 10 + (s[i + k] - '0');
  return v;
}

bool valid_date(int y, int m, int d) {
  static constexpr int days[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m < 1 || m > 12 || d < 1 || d > days[m - 1]) return false;
  if (m == 2 && d == 29) return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return true;
}

std::string iso_date(int y, int m, int d) {
  std::string out(10, '0');
  for (int k = 3; k >= 0; --k, y /= 10) out[k] = static_cast<char>('0' + y % 10);
  out[4] = out[7] = '-';
  out[5] = static_cast<char>('0' + m / 10);
  out[6] = static_cast<char>('0' + m % 10);
  out[8] = static_cast<char>('0' + d / 10);
  out[9] = static_cast<char>('0' + d % 10);
  return out;
}

/// The month named by the ASCII word at `i` ("nov", "November", "sept"), 0 if none; `len` is
/// the word's length. Runs at every word: the first three letters, packed, pick the month.
int month_at(std::string_view s, size_t i, size_t& len) {
  static constexpr std::string_view names[] = {"january",   "february", "march",    "april",
                                               "may",       "june",     "july",     "august",
                                               "september", "october",  "november", "december"};
  switch (to_lower(byte_at(s, i))) {
    case 'j':
    case 'f':
    case 'm':
    case 'a':
    case 's':
    case 'o':
    case 'n':
    case 'd':
      break;
    default:
      return 0;
  }
  size_t j = i;
  while (is_alpha(byte_at(s, j))) ++j;
  len = j - i;
  if (len < 3 || len > 9) return 0;
  const auto key = [](unsigned char a, unsigned char b, unsigned char c) {
    return (uint32_t{a} << 16) | (uint32_t{b} << 8) | c;
  };
  const uint32_t k =
      key(to_lower(byte_at(s, i)), to_lower(byte_at(s, i + 1)), to_lower(byte_at(s, i + 2)));
  for (int m = 0; m < 12; ++m) {
    const std::string_view name = names[m];
    if (k != key(name[0], name[1], name[2])) continue;
    if (len == 3 || equals_ci(s.substr(i, len), name) ||
        (m == 8 && len == 4 && starts_with_ci(s, i, "sept"))) {
      return m + 1;
    }
    return 0;
  }
  return 0;
}

/// Skips an ordinal suffix ("st", "nd", "rd", "th") at `j` if one ends a word there.
size_t skip_ordinal(std::string_view s, size_t j) {
  static constexpr std::string_view suffixes[] = {"st", "nd", "rd", "th"};
  for (std::string_view suf : suffixes) {
    if (starts_with_ci(s, j, suf) && !is_alnum(byte_at(s, j + 2))) return j + 2;
  }
  return j;
}

/// A currency as written. ASCII text in lower case matches in any case ("Dollars"); in upper
/// case only as written, since codes in lower case are words ("5 cad files").
struct currency {
  std::string_view text;
  std::string_view code;
};

bool matches_currency(std::string_view s, size_t i, std::string_view text) {
  return is_lower(static_cast<unsigned char>(text[0])) ? starts_with_ci(s, i, text)
                                                       : starts_with(s, i, text);
}

/// Currency names and codes that may follow an amount ("5 USD", "5 dollars", "100元"). Longer
/// entries first where one is a prefix of another.
constexpr currency suffix_currencies[] = {
    {"USD", "USD"},
    {"dollars", "USD"},
    {"dollar", "USD"},
    {"EUR", "EUR"},
    {"euros", "EUR"},
    {"euro", "EUR"},
    {"GBP", "GBP"},
    {"JPY", "JPY"},
    {"yen", "JPY"},
    {"CNY", "CNY"},
    {"RMB", "CNY"},
    {"yuan", "CNY"},
    {"HKD", "HKD"},
    {"CAD", "CAD"},
    {"AUD", "AUD"},
    {"CHF", "CHF"},
    {"INR", "INR"},
    {"KRW", "KRW"},
    {"SGD", "SGD"},
    {"\xE7\xBE\x8E\xE5\x85\x83", "USD"},              // 美元
    {"\xE6\xAC\xA7\xE5\x85\x83", "EUR"},              // 欧元
    {"\xE8\x8B\xB1\xE9\x95\x91", "GBP"},              // 英镑
    {"\xE6\x97\xA5\xE5\x85\x83", "JPY"},              // 日元
    {"\xE6\xB8\xAF\xE5\x85\x83", "HKD"},              // 港元
    {"\xE6\xB8\xAF\xE5\xB8\x81", "HKD"},              // 港币
    {"\xE4\xBA\xBA\xE6\xB0\x91\xE5\xB8\x81", "CNY"},  // 人民币
    {"\xE5\x9D\x97\xE9\x92\xB1", "CNY"},              // 块钱
    {"\xE5\x85\x83", "CNY"},                          // 元
    {"\xE5\x86\x86", "JPY"},                          // 円
};

/// Symbols and codes that may precede an amount ("$5", "US$5", "€3.50", "USD 5").
constexpr currency prefix_currencies[] = {
    {"US$", "USD"},
    {"HK$", "HKD"},
    {"C$", "CAD"},
    {"A$", "AUD"},
    {"S$", "SGD"},
    {"$", "USD"},
    {"USD", "USD"},
    {"EUR", "EUR"},
    {"GBP", "GBP"},
    {"JPY", "JPY"},
    {"CNY", "CNY"},
    {"RMB", "CNY"},
    {"HKD", "HKD"},
    {"CAD", "CAD"},
    {"AUD", "AUD"},
    {"CHF", "CHF"},
    {"INR", "INR"},
    {"KRW", "KRW"},
    {"SGD", "SGD"},
    {"\xE2\x82\xAC", "EUR"},       // €
    {"\xC2\xA3", "GBP"},           // £
    {"\xC2\xA5", "\xC2\xA5"},      // ¥: yen or yuan, kept as ¥
    {"\xEF\xBF\xA5", "\xC2\xA5"},  // ￥ (full width): the same
    {"\xE2\x82\xB9", "INR"},       // ₹
    {"\xE2\x82\xA9", "KRW"},       // ₩
};

/// A currency word at `i` that ends there (ASCII words need a word boundary); its length, 0 if
/// none.
size_t match_suffix_currency(std::string_view s, size_t i, std::string_view& code) {
  const unsigned char c = byte_at(s, i);
  if (!is_alpha(c) && (c < 0xE4 || c > 0xE8)) return 0;  // every entry starts so
  for (const currency& c : suffix_currencies) {
    const bool ascii = static_cast<unsigned char>(c.text[0]) < 0x80;
    if (matches_currency(s, i, c.text) && !(ascii && is_alnum(byte_at(s, i + c.text.size())))) {
      code = c.code;
      return c.text.size();
    }
  }
  return 0;
}

/// A number as written: digits, thousands groups, a fraction.
struct number_text {
  size_t end = 0;
  std::string whole;      ///< integer digits with the commas removed
  std::string_view frac;  ///< digits after the point, as written
  bool point = false;
  bool grouped = false;
  bool dotted = false;  ///< a.b.c: a version or an address, not a quantity
};

/// Reads a number at `i` (a digit, or "." and a digit).
bool scan_number(std::string_view s, size_t i, number_text& out) {
  size_t j = i + count_digits(s, i);
  const size_t first = j - i;
  out.whole.assign(s.data() + i, first);
  if (first >= 1 && first <= 3) {
    while (byte_at(s, j) == ',' && count_digits(s, j + 1) == 3) {
      out.whole.append(s.data() + j + 1, 3);
      out.grouped = true;
      j += 4;
    }
  }
  if (byte_at(s, j) == '.' && is_digit(byte_at(s, j + 1))) {
    const size_t k = j + 1 + count_digits(s, j + 1);
    out.point = true;
    out.frac = s.substr(j + 1, k - j - 1);
    j = k;
    while (byte_at(s, j) == '.' && is_digit(byte_at(s, j + 1))) {
      out.dotted = true;
      j += 1 + count_digits(s, j + 1);
    }
  }
  if (first == 0 && !out.point) return false;
  out.end = j;
  return true;
}

/// "USD 1000.5" from an amount: no leading zeros, no trailing fraction zeros.
std::string money_value(std::string_view code, const number_text& n, std::string_view sign = {}) {
  std::string v(code);
  v += ' ';
  v += sign;
  size_t z = 0;
  while (z + 1 < n.whole.size() && n.whole[z] == '0') ++z;
  v += n.whole.empty() ? std::string_view("0") : std::string_view(n.whole).substr(z);
  std::string_view frac = n.frac;
  while (!frac.empty() && frac.back() == '0') frac.remove_suffix(1);
  if (!frac.empty()) {
    v += '.';
    v += frac;
  }
  return v;
}

/// Quote pairs; apostrophe-like ones open only at a word start and close only at a word end,
/// so "don't" and "the dogs' bowl" are not quotes.
struct quote_pair {
  std::string_view open, close;
  bool apostrophe_like;
};
constexpr quote_pair quote_pairs[] = {
    {"\"", "\"", false},
    {"'", "'", true},
    {"\xE2\x80\x9C", "\xE2\x80\x9D", false},  // “ ”
    {"\xE2\x80\x98", "\xE2\x80\x99", true},   // ‘ ’
    {"\xE3\x80\x8C", "\xE3\x80\x8D", false},  // 「 」
    {"\xE3\x80\x8E", "\xE3\x80\x8F", false},  // 『 』
    {"\xC2\xAB", "\xC2\xBB", false},          // « »
};
constexpr size_t quote_kinds = sizeof(quote_pairs) / sizeof(quote_pairs[0]);

/// The slots of a query, where they are, and (if asked) the template text.
class scanner {
 public:
  scanner(std::string_view q, bool want_text) : q_(q), want_text_(want_text) {
    if (want_text_) text_.reserve(q.size() + 16);
    for (size_t& p : no_close_from_) p = npos;
    has_at_ = q.find('@') != npos;
  }

  void run() {
    size_t i = 0;
    while (i < q_.size()) {
      const size_t w = space_len(q_, i);
      if (w != 0) {
        pending_space_ = true;
        i += w;
        continue;
      }
      const size_t next = step(i);
      i = next > i ? next : i + 1;  // always forward
    }
    if (want_text_) strip_trailing();
  }

  std::string text_;
  std::vector<slot> slots_;
  std::vector<std::pair<size_t, size_t>> spans_;  ///< [begin, end) of each slot in the query

 private:
  unsigned char at(size_t i) const { return byte_at(q_, i); }

  /// Whether a sign or a leading point at `i` starts a number rather than follow an operand.
  bool starts_operand(size_t i) const {
    if (i == 0) return true;
    const unsigned char p = at(i - 1);
    if (p >= 0x80 || space_len(q_, i - 1) != 0) return true;
    switch (p) {
      case '(':
      case '[':
      case '{':
      case '=':
      case ',':
      case ':':
      case ';':
      case '<':
      case '>':
      case '*':
      case '/':
      case '^':
      case '+':
      case '-':
      case '"':
      case '\'':
        return true;
      default:
        return false;
    }
  }

  size_t step(size_t i) {
    const unsigned char c = at(i);
    size_t end = 0;
    std::string v;
    if (quote_at(i, end, v)) return emit(slot_kind::quoted, i, end, std::move(v));
    if (has_at_ && email_at(i, end, v)) return emit(slot_kind::email, i, end, std::move(v));
    if (is_digit(c)) {
      if (date_at(i, end, v)) return emit(slot_kind::date, i, end, std::move(v));
      if (phone_at(i, end, v)) return emit(slot_kind::phone, i, end, std::move(v));
      return digit_word(i);
    }
    if (is_alpha(c)) {
      if (month_date_at(i, end, v)) return emit(slot_kind::date, i, end, std::move(v));
      if (money_prefix_at(i, end, v)) return emit(slot_kind::money, i, end, std::move(v));
      return letter_word(i);
    }
    switch (c) {
      case '+':
        if (!starts_operand(i) || !is_digit(at(i + 1))) break;
        if (phone_at(i, end, v)) return emit(slot_kind::phone, i, end, std::move(v));
        return number_at(i, 1);
      case '-':
        if (!starts_operand(i)) break;
        if (is_digit(at(i + 1)) || (at(i + 1) == '.' && is_digit(at(i + 2)))) {
          return number_at(i, 1);
        }
        break;
      case '.':
        if (starts_operand(i) && is_digit(at(i + 1))) return number_at(i, 0);
        break;
      case '(':
        if (is_digit(at(i + 1)) && phone_at(i, end, v)) {
          return emit(slot_kind::phone, i, end, std::move(v));
        }
        break;
      case '#':  // "#12345", an order or ticket number
        if (is_digit(at(i + 1))) {
          end = word_end(i + 1);
          return emit(slot_kind::id, i, end, std::string(q_.substr(i, end - i)));
        }
        break;
      default:
        if (money_prefix_at(i, end, v)) return emit(slot_kind::money, i, end, std::move(v));
        break;
    }
    copy_text(i, i + 1);
    return i + 1;
  }

  // ---- output ----

  void space() {
    if (pending_space_ && !text_.empty()) text_ += ' ';
    pending_space_ = false;
  }

  size_t emit(slot_kind k, size_t b, size_t e, std::string v) {
    if (want_text_) {
      space();
      text_ += '{';
      text_ += kind_name(k);
      text_ += '}';
    }
    pending_space_ = false;
    slots_.push_back(slot{k, std::move(v)});
    spans_.emplace_back(b, e);
    return e;
  }

  void copy_text(size_t b, size_t e) {
    if (!want_text_) return;
    space();
    const size_t old = text_.size();
    text_.append(q_.data() + b, e - b);
    for (size_t k = old; k < text_.size(); ++k) {
      char& ch = text_[k];
      ch = to_lower(static_cast<unsigned char>(ch));
      if (ch == '{') text_.insert(k++, 1, '{');  // only ever a one-byte copy
    }
  }

  /// Drops trailing ? ! . 。 ？ ！ and spaces, never into a placeholder (which ends in '}').
  void strip_trailing() {
    while (!text_.empty()) {
      const char b = text_.back();
      if (b == '?' || b == '!' || b == '.' || b == ' ') {
        text_.pop_back();
      } else if (text_.ends_with("\xE3\x80\x82") || text_.ends_with("\xEF\xBC\x9F") ||
                 text_.ends_with("\xEF\xBC\x81")) {  // 。 ？ ！
        text_.resize(text_.size() - 3);
      } else {
        break;
      }
    }
  }

  // ---- words ----

  /// End of the word at `i`: letters and digits, joined by single '-', '_' or '.' between them.
  /// `kinds` gets 1 if it holds a letter, 2 if a digit.
  size_t word_end(size_t i, int* kinds = nullptr) const {
    size_t j = i;
    int k = 0;
    while (true) {
      for (unsigned char c = at(j); is_alnum(c); c = at(++j)) k |= is_digit(c) ? 2 : 1;
      if (kinds != nullptr) *kinds = k;
      const unsigned char c = at(j);
      if ((c == '-' || c == '_' || c == '.') && j > i && is_alnum(at(j + 1))) {
        ++j;
        continue;
      }
      return j;
    }
  }

  size_t letter_word(size_t i) {
    int kinds = 0;
    const size_t e = word_end(i, &kinds);
    if (kinds & 2) return emit(slot_kind::id, i, e, std::string(q_.substr(i, e - i)));
    copy_text(i, e);
    return e;
  }

  size_t digit_word(size_t i) {
    // Inside a letterless word already read ("2026-2026-2026…"), each number is read alone:
    // re-reading the word from every number in it would be quadratic.
    if (i < letterless_until_) return number_at(i, 0);
    int kinds = 0;
    const size_t e = word_end(i, &kinds);
    if (!(kinds & 1)) {
      letterless_until_ = e;
      return number_at(i, 0);
    }
    // "5USD", "100rmb", "2.5dollars": an amount with its currency glued on.
    number_text n;
    std::string_view code;
    if (scan_number(q_, i, n) && !n.dotted && n.end + match_suffix_currency(q_, n.end, code) == e) {
      return emit(slot_kind::money, i, e, money_value(code, n));
    }
    return emit(slot_kind::id, i, e, std::string(q_.substr(i, e - i)));
  }

  /// A number at `i`, after `sign_len` sign bytes; with its percent or currency if one follows.
  size_t number_at(size_t i, size_t sign_len) {
    number_text n;
    if (!scan_number(q_, i + sign_len, n)) {
      copy_text(i, i + 1);
      return i + 1;
    }
    size_t e = n.end;
    if (n.dotted) return emit(slot_kind::id, i, e, std::string(q_.substr(i, e - i)));
    std::string v(q_.substr(i, sign_len));
    v += n.whole.empty() ? std::string_view("0") : std::string_view(n.whole);
    if (n.point) {
      v += '.';
      v += n.frac;
    }
    // "5%", "5％", "5 percent"
    const size_t after = e + (at(e) == ' ' ? 1 : 0);
    if (at(e) == '%') return emit(slot_kind::number, i, e + 1, v + '%');
    if (starts_with(q_, e, "\xEF\xBC\x85")) return emit(slot_kind::number, i, e + 3, v + '%');
    if (starts_with_ci(q_, after, "percent") && !is_alnum(at(after + 7))) {
      return emit(slot_kind::number, i, after + 7, v + '%');
    }
    // "5 USD", "5 dollars", "100元", "5$"
    std::string_view code;
    if (size_t len = match_suffix_currency(q_, after, code); len != 0) {
      return emit(slot_kind::money, i, after + len, money_value(code, n, q_.substr(i, sign_len)));
    }
    static constexpr std::string_view symbols[] = {"$", "\xE2\x82\xAC", "\xC2\xA3"};
    for (std::string_view sym : symbols) {  // $ € £ right after
      if (starts_with(q_, e, sym) && !is_digit(at(e + sym.size()))) {
        code = sym == "$" ? "USD" : sym.size() == 3 ? "EUR" : "GBP";
        return emit(slot_kind::money, i, e + sym.size(),
                    money_value(code, n, q_.substr(i, sign_len)));
      }
    }
    if (sign_len == 0 && !n.grouped && !n.point && n.whole.size() >= 15 && n.whole.size() <= 18) {
      return emit(slot_kind::id, i, e, std::string(q_.substr(i, e - i)));
    }
    return emit(slot_kind::number, i, e, std::move(v));
  }

  // ---- money ----

  /// "$5", "US$5", "€ 3.50", "USD 5", "¥100" at `i`.
  bool money_prefix_at(size_t i, size_t& end, std::string& v) const {
    const unsigned char c = at(i);
    if (is_alpha(c)) {  // "US$", "C$", "USD": upper case, then '$' or the amount
      if (!is_upper(c) || (i > 0 && is_alnum(at(i - 1)))) return false;
      size_t j = i;
      while (is_upper(at(j)) && j - i < 4) ++j;
      const unsigned char n = at(j);
      if (!(j - i <= 2 && n == '$') && !(j - i == 3 && (n == ' ' || is_digit(n)))) return false;
    } else if (c != '$' && c != 0xC2 && c != 0xE2 && c != 0xEF) {
      return false;
    }
    for (const currency& c : prefix_currencies) {
      if (!matches_currency(q_, i, c.text)) continue;
      size_t j = i + c.text.size();
      if (at(j) == ' ') ++j;
      if (!is_digit(at(j)) && !(at(j) == '.' && is_digit(at(j + 1)))) return false;
      number_text n;
      if (!scan_number(q_, j, n) || n.dotted) return false;
      end = n.end;
      v = money_value(c.code, n);
      return true;
    }
    return false;
  }

  // ---- quotes ----

  bool quote_at(size_t i, size_t& end, std::string& v) {
    const unsigned char c = at(i);
    if (c != '"' && c != '\'' && c < 0x80) return false;
    for (size_t k = 0; k < quote_kinds; ++k) {
      const quote_pair& qp = quote_pairs[k];
      if (!starts_with(q_, i, qp.open)) continue;
      const size_t from = i + qp.open.size();
      if (qp.apostrophe_like) {
        if ((i > 0 && is_alnum(at(i - 1))) || from >= q_.size() || space_len(q_, from) != 0) {
          return false;
        }
      }
      if (i >= no_close_from_[k]) return false;  // an earlier search found no closer after it
      size_t close = from;
      while (true) {
        close = q_.find(qp.close, close);
        if (close == npos || !qp.apostrophe_like || !is_alnum(at(close + qp.close.size()))) break;
        ++close;
      }
      if (close == npos) {
        no_close_from_[k] = i;
        return false;
      }
      v.assign(q_.substr(from, close - from));
      end = close + qp.close.size();
      return true;
    }
    return false;
  }

  // ---- emails ----

  static bool is_local(unsigned char c) {
    return is_alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-';
  }

  /// Tried only where a run of local-part characters starts, so runs are read once.
  bool email_at(size_t i, size_t& end, std::string& v) const {
    if (!is_alnum(at(i)) || (i > 0 && is_local(at(i - 1)))) return false;
    size_t j = i;
    while (is_local(at(j))) ++j;
    if (at(j) != '@') return false;
    const size_t d = j + 1;
    size_t e = d;
    while (is_alnum(at(e)) || at(e) == '-' || at(e) == '.') ++e;
    while (e > d && (at(e - 1) == '.' || at(e - 1) == '-')) --e;
    // at least two labels, none empty, the last two or more letters
    size_t last_dot = npos;
    for (size_t k = d; k < e; ++k) {
      if (at(k) != '.') continue;
      if (k == d || at(k - 1) == '.') return false;
      last_dot = k;
    }
    if (last_dot == npos || e - last_dot - 1 < 2) return false;
    for (size_t k = last_dot + 1; k < e; ++k) {
      if (!is_alpha(at(k))) return false;
    }
    end = e;
    v.resize(e - i);
    for (size_t k = i; k < e; ++k) v[k - i] = to_lower(at(k));
    return true;
  }

  // ---- dates ----

  /// A date starting with a digit: ISO, d/m/y, "21 Nov 2026", 2026年11月21日.
  bool date_at(size_t i, size_t& end, std::string& v) const {
    const size_t n1 = count_digits(q_, i);
    const unsigned char sep = at(i + n1);
    const bool sep_ok = sep == '-' || sep == '/' || sep == '.';
    if (n1 == 4 && sep_ok) {  // 2026-11-21, 2026/11/21, 2026.11.21
      const size_t a = i + 5, n2 = count_digits(q_, a);
      const size_t b = a + n2 + 1, n3 = count_digits(q_, b);
      const size_t e = b + n3;
      if (n2 >= 1 && n2 <= 2 && at(a + n2) == sep && n3 >= 1 && n3 <= 2 &&
          !(at(e) == sep && is_digit(at(e + 1)))) {
        const int y = small_int(q_, i, 4), m = small_int(q_, a, n2), d = small_int(q_, b, n3);
        if (valid_date(y, m, d)) {
          end = e;
          v = iso_date(y, m, d);
          return true;
        }
      }
      return false;
    }
    if (n1 == 4 && starts_with(q_, i + 4, "\xE5\xB9\xB4")) {  // 年
      const size_t a = i + 7, n2 = count_digits(q_, a);
      const size_t b = a + n2 + 3, n3 = count_digits(q_, b);
      if (n2 >= 1 && n2 <= 2 && starts_with(q_, a + n2, "\xE6\x9C\x88") && n3 >= 1 &&  // 月
          n3 <= 2 &&
          (starts_with(q_, b + n3, "\xE6\x97\xA5") || starts_with(q_, b + n3, "\xE5\x8F\xB7"))) {
        const int y = small_int(q_, i, 4), m = small_int(q_, a, n2), d = small_int(q_, b, n3);
        if (valid_date(y, m, d)) {  // 日 号
          end = b + n3 + 3;
          v = iso_date(y, m, d);
          return true;
        }
      }
      return false;
    }
    if (n1 < 1 || n1 > 2) return false;
    if (sep_ok && is_digit(at(i + n1 + 1))) {  // 21/11/2026, 11-21-2026, 21.11.2026, 5/6/26
      const size_t a = i + n1 + 1, n2 = count_digits(q_, a);
      const size_t b = a + n2 + 1, n3 = count_digits(q_, b);
      const size_t e = b + n3;
      if (n2 < 1 || n2 > 2 || at(a + n2) != sep || (n3 != 2 && n3 != 4) ||
          (sep == '.' && n3 != 4) || (at(e) == sep && is_digit(at(e + 1)))) {
        return false;
      }
      const int p = small_int(q_, i, n1), r = small_int(q_, a, n2);
      if (p < 1 || r < 1 || p > 31 || r > 31 || (p > 12 && r > 12)) return false;
      end = e;
      if (n3 == 4 && (p == r || p > 12 || r > 12)) {  // only one reading is a date
        const int y = small_int(q_, b, 4), m = p > 12 ? r : p, d = p > 12 ? p : r;
        if (valid_date(y, m, d)) {
          v = iso_date(y, m, d);
          return true;
        }
      }
      v.assign(q_.substr(i, e - i));  // both readings possible: as written
      return true;
    }
    // 21 Nov 2026, 21st of November, 2026, 21-Nov-2026
    size_t j = skip_ordinal(q_, i + n1);
    if (at(j) != ' ' && at(j) != '-') return false;
    ++j;
    if (starts_with_ci(q_, j, "of ")) j += 3;
    size_t len = 0;
    const int m = month_at(q_, j, len);
    if (m == 0) return false;
    j += len;
    if (at(j) == '.') ++j;
    if (at(j) == ',') ++j;
    if (at(j) != ' ' && at(j) != '-') return false;
    ++j;
    if (count_digits(q_, j) != 4 || is_alnum(at(j + 4))) return false;
    const int y = small_int(q_, j, 4), d = small_int(q_, i, n1);
    if (!valid_date(y, m, d)) return false;
    end = j + 4;
    v = iso_date(y, m, d);
    return true;
  }

  /// "November 21, 2026", "Nov 21 2026", "Nov. 21st, 2026".
  bool month_date_at(size_t i, size_t& end, std::string& v) const {
    size_t len = 0;
    const int m = month_at(q_, i, len);
    if (m == 0) return false;
    size_t j = i + len;
    if (at(j) == '.') ++j;
    if (at(j) != ' ') return false;
    ++j;
    const size_t nd = count_digits(q_, j);
    if (nd < 1 || nd > 2) return false;
    const int d = small_int(q_, j, nd);
    j = skip_ordinal(q_, j + nd);
    const size_t before = j;
    if (at(j) == ',') ++j;
    if (at(j) == ' ') ++j;
    if (j == before || count_digits(q_, j) != 4 || is_alnum(at(j + 4))) return false;
    const int y = small_int(q_, j, 4);
    if (!valid_date(y, m, d)) return false;
    end = j + 4;
    v = iso_date(y, m, d);
    return true;
  }

  // ---- phones ----

  bool phone_at(size_t i, size_t& end, std::string& v) const {
    struct group {
      size_t len, end;
      bool paren;
      unsigned char sep_before;
    };
    group groups[8];
    size_t count = 0, digits = 0;
    size_t j = i;
    const bool plus = at(j) == '+';
    if (plus) ++j;
    unsigned char sep = 0;
    while (count < 8) {
      group g{0, 0, false, sep};
      if (at(j) == '(' && (count == 0 || (count == 1 && plus))) {
        g.len = count_digits(q_, j + 1);
        if (g.len < 1 || g.len > 4 || at(j + 1 + g.len) != ')') break;
        g.paren = true;
        j += g.len + 2;
      } else if (is_digit(at(j))) {
        g.len = count_digits(q_, j);
        j += g.len;
      } else {
        break;
      }
      digits += g.len;
      if (digits > 15) return false;
      g.end = j;
      groups[count++] = g;
      const unsigned char s = at(j);
      if ((s == ' ' || s == '-' || s == '.') && (is_digit(at(j + 1)) || at(j + 1) == '(')) {
        sep = s;
        ++j;
      } else if (g.paren && s == ' ' && at(j + 1) == '-' && at(j + 2) == ' ') {
        sep = '-';
        j += 3;
      } else if (!(g.paren && is_digit(s))) {
        break;
      } else {
        sep = 0;
      }
    }
    // a trailing one-digit group is a separate number: "+1 555 123 4567 5 times"
    while (count > 1 && groups[count - 1].len < 2) digits -= groups[--count].len;
    if (count == 0 || digits < 7) return false;
    const size_t e = groups[count - 1].end;
    if (is_alnum(at(e))) return false;
    bool ok = false;
    if (plus) {
      ok = true;
    } else if (groups[0].paren) {
      ok = groups[0].len >= 2 && (count >= 3 || digits >= 10);
    } else if (count >= 3 && groups[0].len >= 2 && groups[0].len <= 4 &&
               groups[count - 1].len == 4) {
      const unsigned char s = groups[1].sep_before;
      ok = s == '-' || s == '.';
      for (size_t k = 1; k < count && ok; ++k) {
        ok = groups[k].sep_before == s &&
             (k + 1 == count || (groups[k].len >= 3 && groups[k].len <= 4));
      }
    }
    if (!ok) return false;
    v.clear();
    for (size_t k = i; k < e; ++k) {
      if (is_digit(at(k))) v += static_cast<char>(at(k));
    }
    end = e;
    return true;
  }

  std::string_view q_;
  bool want_text_;
  bool pending_space_ = false;
  bool has_at_ = false;
  size_t letterless_until_ = 0;
  size_t no_close_from_[quote_kinds];
};

// ---- guards ----

/// Words after which a '.' does not end a sentence: "Dr. Smith", "vs. Germany".
bool is_abbreviation(std::string_view w) {
  static constexpr std::string_view words[] = {"mr", "mrs", "ms", "dr", "prof",
                                               "st", "sr",  "jr", "vs", "mt"};
  if (w.size() > 4) return false;
  for (std::string_view s : words) {
    if (equals_ci(w, s)) return true;
  }
  return w.size() == 1 && is_upper(static_cast<unsigned char>(w[0]));  // an initial: "J. K."
}

bool is_negation_word(std::string_view w) {
  if (w.size() < 2 || w.size() > 8) return false;
  char buf[8];
  for (size_t k = 0; k < w.size(); ++k) buf[k] = to_lower(static_cast<unsigned char>(w[k]));
  const std::string_view l(buf, w.size());
  switch (l.size()) {
    case 2:
      return l == "no";
    case 3:
      return l == "not" || l == "nor";
    case 4:
      return l == "none" || l == "dont" || l == "isnt" || l == "cant" || l == "wont" || l == "aint";
    case 5:
      return l == "never" || l == "didnt" || l == "arent" || l == "wasnt" || l == "hasnt" ||
             l == "hadnt";
    case 6:
      return l == "nobody" || l == "cannot" || l == "doesnt" || l == "werent" || l == "havent" ||
             l == "mustnt" || l == "neednt";
    case 7:
      return l == "nothing" || l == "neither" || l == "without" || l == "couldnt" || l == "wouldnt";
    default:
      return l == "shouldnt";
  }
}

/// Chinese negation characters: 不 没 无 非 别 未.
constexpr std::string_view zh_negations[] = {"\xE4\xB8\x8D", "\xE6\xB2\xA1", "\xE6\x97\xA0",
                                             "\xE9\x9D\x9E", "\xE5\x88\xAB", "\xE6\x9C\xAA"};

/// Common words holding one of those characters without negating anything.
constexpr std::string_view zh_not_negations[] = {
    "\xE9\x9D\x9E\xE5\xB8\xB8",  // 非常 very
    "\xE9\x9D\x9E\xE6\xB4\xB2",  // 非洲 Africa
    "\xE9\x99\xA4\xE9\x9D\x9E",  // 除非 unless
    "\xE7\x89\xB9\xE5\x88\xAB",  // 特别 especially
    "\xE5\x8C\xBA\xE5\x88\xAB",  // 区别 difference
    "\xE5\x88\x86\xE5\x88\xAB",  // 分别 respectively
    "\xE7\xB1\xBB\xE5\x88\xAB",  // 类别 category
    "\xE7\xBA\xA7\xE5\x88\xAB",  // 级别 level
    "\xE6\x80\xA7\xE5\x88\xAB",  // 性别 sex
    "\xE5\x91\x8A\xE5\x88\xAB",  // 告别 farewell
    "\xE8\xAF\x86\xE5\x88\xAB",  // 识别 recognise
    "\xE4\xB8\xAA\xE5\x88\xAB",  // 个别 individual
    "\xE5\xB7\xAE\xE5\x88\xAB",  // 差别 difference
    "\xE5\x88\xAB\xE4\xBA\xBA",  // 别人 others
    "\xE5\x88\xAB\xE7\x9A\x84",  // 别的 other
    "\xE6\x9C\xAA\xE6\x9D\xA5",  // 未来 future
    "\xE6\x97\xA0\xE8\xAE\xBA",  // 无论 regardless
    "\xE6\x97\xA0\xE7\xBA\xBF",  // 无线 wireless
    "\xE4\xB8\x8D\xE8\xBF\x87",  // 不过 but
    "\xE4\xB8\x8D\xE4\xBB\x85",  // 不仅 not only
    "\xE4\xB8\x8D\xE4\xBD\x86",  // 不但 not only
    "\xE4\xB8\x8D\xE6\x96\xAD",  // 不断 continuously
    "\xE4\xB8\x8D\xE7\xAE\xA1",  // 不管 no matter
};

/// Entities and negations of the query outside its slots. Capitalisation is the only signal:
/// a question typed all lower-case ("what is the capital of france") has no entity, which is
/// accepted: the semantic tier's similarity threshold has to tell those apart.
class guard_scanner {
 public:
  guard_scanner(std::string_view q, const std::vector<std::pair<size_t, size_t>>& spans, guard& g)
      : q_(q), spans_(spans), g_(g) {}

  void run() {
    size_t i = 0, span = 0;
    while (i < q_.size()) {
      if (span < spans_.size() && i >= spans_[span].first) {
        end_word_context();
        sentence_start_ = false;
        i = std::max(i, spans_[span].second);
        ++span;
        continue;
      }
      const size_t limit = span < spans_.size() ? spans_[span].first : q_.size();
      const unsigned char c = byte_at(q_, i);
      if (is_alpha(c)) {
        i = word(i, limit);
      } else if (c == '.' || c == '!' || c == '?') {
        const bool not_end =
            c == '.' && i > 0 &&
            (is_digit(byte_at(q_, i - 1)) || (last_abbreviation_ && is_alpha(byte_at(q_, i - 1))));
        if (!not_end) sentence_start_ = true;
        last_abbreviation_ = false;
        ++i;
      } else if (c < 0x80) {
        if (is_digit(c)) sentence_start_ = false;
        last_abbreviation_ = false;
        ++i;
      } else {
        i = non_ascii(i);
      }
    }
    flush();
    g_.negated = negations_ % 2 == 1;
    // In order of first appearance: "from Paris to London" is not "from London to Paris".
    std::vector<std::string> unique;
    for (auto& e : g_.entities) {
      if (std::find(unique.begin(), unique.end(), e) == unique.end())
        unique.push_back(std::move(e));
    }
    g_.entities = std::move(unique);
  }

 private:
  void end_word_context() {
    flush();
    last_abbreviation_ = false;
  }

  /// A word of ASCII letters (and two-byte Latin letters: "Zürich"), no further than `limit`.
  size_t word(size_t b, size_t limit) {
    size_t e = b;
    size_t upper = 0, lower = 0, inner_upper = 0;
    bool ascii = true;
    while (e < limit) {
      const unsigned char c = byte_at(q_, e);
      if (is_alpha(c)) {
        if (is_upper(c)) {
          ++upper;
          if (e > b) ++inner_upper;
        } else {
          ++lower;
        }
        ++e;
      } else if (c >= 0xC3 && c <= 0xC9 && e + 1 < limit && (byte_at(q_, e + 1) & 0xC0) == 0x80) {
        ascii = false;
        e += 2;
      } else {
        break;
      }
    }
    const std::string_view w = q_.substr(b, e - b);
    // negation: a word, "n't" / "n’t", Chinese handled in non_ascii
    if (ascii && is_negation_word(w)) {
      if (equals_ci(w, "nor") && neither_) {
        // "neither ... nor" is one negation
      } else {
        ++negations_;
        if (equals_ci(w, "neither")) neither_ = true;
      }
    }
    if ((w.back() == 'n' || w.back() == 'N')) {
      size_t a = npos;
      if (byte_at(q_, e) == '\'') a = e + 1;
      if (starts_with(q_, e, "\xE2\x80\x99")) a = e + 3;  // ’
      if (a != npos && (byte_at(q_, a) == 't' || byte_at(q_, a) == 'T') &&
          !is_alpha(byte_at(q_, a + 1))) {
        ++negations_;
      }
    }
    const bool capital = is_upper(static_cast<unsigned char>(w[0]));
    const bool abbreviation = byte_at(q_, e) == '.' && is_abbreviation(w);
    const bool title = abbreviation && w.size() > 1;  // "Dr." is not a name, "J." may be
    const bool pronoun_i = (w.size() == 1 && w[0] == 'I') || title;
    const bool acronym = upper >= 2 && lower == 0;
    const bool inner = inner_upper > 0 && lower > 0;  // iPhone, McDonald, YouTube
    const bool entity = !pronoun_i && (acronym || inner || (capital && !sentence_start_));
    if (entity) {
      if (run_begin_ == npos || !joins(run_end_, b)) {
        flush();
        run_begin_ = b;
      }
      run_end_ = e;
    } else {
      flush();  // a sentence-initial word never starts a name: "New York is big" gives "york"
    }
    last_abbreviation_ = abbreviation;
    sentence_start_ = false;
    return e;
  }

  size_t non_ascii(size_t i) {
    if (starts_with(q_, i, "\xE3\x80\x82") || starts_with(q_, i, "\xEF\xBC\x9F") ||
        starts_with(q_, i, "\xEF\xBC\x81")) {  // 。 ？ ！
      sentence_start_ = true;
      last_abbreviation_ = false;
      return i + 3;
    }
    if (space_len(q_, i) != 0) return i + space_len(q_, i);
    sentence_start_ = false;
    last_abbreviation_ = false;
    flush();
    for (std::string_view neg : zh_negations) {
      if (!starts_with(q_, i, neg)) continue;
      bool compound = false;
      for (std::string_view word : zh_not_negations) {
        compound = compound || (word.substr(0, 3) == neg && starts_with(q_, i, word)) ||
                   (word.substr(3) == neg && i >= 3 && starts_with(q_, i - 3, word));
      }
      if (!compound) ++negations_;
      return i + 3;
    }
    return i + 1;
  }

  /// Two words are one name when a single space or hyphen separates them.
  bool joins(size_t prev_end, size_t next_begin) const {
    if (next_begin != prev_end + 1) return false;
    const unsigned char c = byte_at(q_, prev_end);
    return c == ' ' || c == '-';
  }

  void flush() {
    if (run_begin_ == npos) return;
    std::string name(q_.substr(run_begin_, run_end_ - run_begin_));
    for (char& ch : name) ch = to_lower(static_cast<unsigned char>(ch));
    g_.entities.push_back(std::move(name));
    run_begin_ = npos;
  }

  std::string_view q_;
  const std::vector<std::pair<size_t, size_t>>& spans_;
  guard& g_;
  bool sentence_start_ = true;
  bool last_abbreviation_ = false;
  bool neither_ = false;
  size_t run_begin_ = npos, run_end_ = 0;
  int negations_ = 0;
};

}  // namespace

templated make_template(std::string_view query) {
  scanner s(query, true);
  s.run();
  return templated{std::move(s.text_), std::move(s.slots_)};
}

guard make_guard(std::string_view query) {
  scanner s(query, false);
  s.run();
  guard g;
  guard_scanner(query, s.spans_, g).run();
  g.slots = std::move(s.slots_);  // in order: "2-3" is not "3-2"
  return g;
}

}  // namespace tc::canonical
