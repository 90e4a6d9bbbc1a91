// The pattern is parsed into a tree, then compiled to a small program for a backtracking
// machine with an explicit stack (no recursion on the input, so a long run of letters cannot
// overflow the C++ stack). A repeat of a single-code-point atom (\p{L}+, \s*, [^...]{1,3}) is
// one instruction that consumes greedily and leaves one stack entry for all its backtracking.
// The input is decoded once per call into code points with their General Category and
// White_Space bit.
#include "protocol/text/regex.hpp"

#include <algorithm>
#include <array>
#include <limits>
#include <optional>
#include <utility>

#include "protocol/text/unicode.hpp"

namespace tc::text {

namespace {

constexpr uint32_t unbounded = std::numeric_limits<uint32_t>::max();
constexpr uint32_t max_repeat = 1000;            ///< largest {n,m} bound accepted
constexpr size_t max_program = size_t{1} << 16;  ///< instructions

constexpr uint8_t ws_bit = 0x20;  ///< in a decoded property byte, above the 5 bits of category

constexpr uint32_t gc_bit(gc g) {
  return 1u << static_cast<int>(g);
}

constexpr uint32_t all_gc = (1u << gc_count) - 1;

/// simple_fold with ASCII inline.
char32_t fold(char32_t c) {
  if (c < 128) return c >= 'A' && c <= 'Z' ? c + 32 : c;
  return simple_fold(c);
}

/// A character class: ranges, General Categories and White_Space, maybe negated.
struct char_set {
  std::vector<std::pair<char32_t, char32_t>> ranges;  ///< sorted, merged after finish()
  uint32_t gc_mask = 0;
  bool space = false;      ///< White_Space (\s)
  bool not_space = false;  ///< not White_Space (\S)
  bool word = false;       ///< \w
  bool not_word = false;   ///< \W
  bool negated = false;
  std::array<uint64_t, 2> ascii{};       ///< the answer for code points below 128
  std::array<uint64_t, 2> ascii_fold{};  ///< the same, case-insensitive

  /// Oniguruma's \w (Unicode): General Category L, M, Nd, Nl or Pc, and the code points its
  /// word table adds to those (checked against Oniguruma 6.9.8 over all code points): the
  /// Latin-1 digits and fractions ² ³ ¹ ¼ ½ ¾ (No) and the circled, parenthesized and squared
  /// Latin letters (So, Other_Alphabetic).
  static bool is_word(char32_t c, uint8_t prop) {
    constexpr uint32_t mask = gc_bit(gc::Lu) | gc_bit(gc::Ll) | gc_bit(gc::Lt) | gc_bit(gc::Lm) |
                              gc_bit(gc::Lo) | gc_bit(gc::Mn) | gc_bit(gc::Mc) | gc_bit(gc::Me) |
                              gc_bit(gc::Nd) | gc_bit(gc::Nl) | gc_bit(gc::Pc);
    if ((mask >> (prop & 31) & 1) != 0) return true;
    return c == 0xB2 || c == 0xB3 || c == 0xB9 || (c >= 0xBC && c <= 0xBE) ||
           (c >= 0x24B6 && c <= 0x24E9) || (c >= 0x1F130 && c <= 0x1F149) ||
           (c >= 0x1F150 && c <= 0x1F169) || (c >= 0x1F170 && c <= 0x1F189);
  }
  bool raw(char32_t c, uint8_t prop) const {
    if ((gc_mask >> (prop & 31) & 1) != 0) return true;
    if (space && (prop & ws_bit) != 0) return true;
    if (not_space && (prop & ws_bit) == 0) return true;
    if ((word || not_word) && is_word(c, prop) == word) return true;
    if (word && not_word) return true;  // [\w\W]: everything
    auto it = std::upper_bound(
        ranges.begin(), ranges.end(), c,
        [](char32_t v, const std::pair<char32_t, char32_t>& r) { return v < r.first; });
    return it != ranges.begin() && c <= (it - 1)->second;
  }
  static uint8_t prop_of(char32_t c) {
    static const std::array<uint8_t, 128> ascii = [] {
      std::array<uint8_t, 128> t{};
      for (char32_t a = 0; a < 128; ++a) t[a] = slow_prop(a);
      return t;
    }();
    return c < 128 ? ascii[c] : slow_prop(c);
  }
  static uint8_t slow_prop(char32_t c) {
    return static_cast<uint8_t>(static_cast<uint8_t>(category(c)) |
                                (is_white_space(c) ? ws_bit : 0));
  }
  bool raw_fold(char32_t c, uint8_t prop) const {
    if (raw(c, prop)) return true;
    const char32_t f = fold(c);
    if (f != c && raw(f, prop_of(f))) return true;
    return f >= 'a' && f <= 'z' && raw(f - 32, prop_of(f - 32));
  }
  bool test(char32_t c, uint8_t prop) const {
    if (c < 128) return (ascii[c >> 6] >> (c & 63) & 1) != 0;
    return raw(c, prop) != negated;
  }
  bool test_fold(char32_t c, uint8_t prop) const {
    if (c < 128) return (ascii_fold[c >> 6] >> (c & 63) & 1) != 0;
    return raw_fold(c, prop) != negated;
  }
  void finish() {
    std::sort(ranges.begin(), ranges.end());
    std::vector<std::pair<char32_t, char32_t>> merged;
    for (const auto& r : ranges) {
      if (!merged.empty() && r.first <= merged.back().second + 1) {
        merged.back().second = std::max(merged.back().second, r.second);
      } else {
        merged.push_back(r);
      }
    }
    ranges = std::move(merged);
    for (char32_t c = 0; c < 128; ++c) {
      if (raw(c, prop_of(c)) != negated) ascii[c >> 6] |= uint64_t{1} << (c & 63);
      if (raw_fold(c, prop_of(c)) != negated) ascii_fold[c >> 6] |= uint64_t{1} << (c & 63);
    }
  }
};

enum class op : uint8_t {
  cp,        ///< the code point x
  cp_fold,   ///< a code point whose simple folding is x
  any,       ///< any code point but \n
  set,       ///< a member of sets[x]
  set_fold,  ///< the same, case-insensitive
  split,     ///< go on at x; on failure, at y
  jmp,       ///< go on at x
  repeat,    ///< the atom at pc + 1, min to max times (greedy or not), then pc + 2
  look,      ///< the sub-program at pc + 1 matches here: go on at y, consuming nothing
  look_not,  ///< it does not match here: go on at y
  match,     ///< success (of the pattern, or of a lookahead's sub-program)
};

struct inst {
  op o = op::match;
  bool greedy = true;
  uint32_t x = 0;
  uint32_t y = 0;
  uint32_t min = 0;
  uint32_t max = 0;
  uint32_t first_x = 0;  ///< split: index in program::firsts of what can start a match at x
  uint32_t first_y = 0;  ///< the same at y
};

/// The code points that can start a match from some instruction on (a superset): ASCII ones
/// by bit, others by General Category or all of them. Lets a split skip an alternative that
/// cannot match here without pushing it, and the search skip start positions.
struct first_set {
  std::array<uint64_t, 2> ascii{};
  uint32_t other_gc = 0;  ///< non-ASCII code points of these categories may start a match
  bool other_all = false;

  static first_set all() {
    first_set f;
    f.ascii = {~uint64_t{0}, ~uint64_t{0}};
    f.other_all = true;
    return f;
  }
  void add(const first_set& o) {
    ascii[0] |= o.ascii[0];
    ascii[1] |= o.ascii[1];
    other_gc |= o.other_gc;
    other_all = other_all || o.other_all;
  }
  void add_ascii(char32_t c) { ascii[c >> 6] |= uint64_t{1} << (c & 63); }
  bool may_start(char32_t c, uint8_t prop) const {
    if (c < 128) return (ascii[c >> 6] >> (c & 63) & 1) != 0;
    return other_all || (other_gc >> (prop & 31) & 1) != 0;
  }
};

/// The parse tree.
struct node {
  enum kind_t : uint8_t { empty, single, concat, alt, repeat, look } kind = empty;
  inst atom;               ///< single: a cp / cp_fold / any / set / set_fold instruction
  std::vector<node> kids;  ///< concat, alt: the parts; repeat, look: one
  uint32_t min = 0;        ///< repeat
  uint32_t max = 0;        ///< repeat
  bool greedy = true;      ///< repeat
  bool negative = false;   ///< look
};

bool nullable(const node& n) {
  switch (n.kind) {
    case node::empty:
    case node::look:
      return true;
    case node::single:
      return false;
    case node::concat:
      return std::all_of(n.kids.begin(), n.kids.end(), nullable);
    case node::alt:
      return std::any_of(n.kids.begin(), n.kids.end(), nullable);
    case node::repeat:
      return n.min == 0 || nullable(n.kids[0]);
  }
  return true;
}

/// A General Category property name (compared without case, spaces, '_' or '-') -> mask.
uint32_t property_mask(std::string_view name) {
  std::string key;
  for (char c : name) {
    if (c == ' ' || c == '_' || c == '-') continue;
    key += static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
  }
  using g = gc;
  const uint32_t letter =
      gc_bit(g::Lu) | gc_bit(g::Ll) | gc_bit(g::Lt) | gc_bit(g::Lm) | gc_bit(g::Lo);
  const uint32_t mark = gc_bit(g::Mn) | gc_bit(g::Mc) | gc_bit(g::Me);
  const uint32_t number = gc_bit(g::Nd) | gc_bit(g::Nl) | gc_bit(g::No);
  const uint32_t punct = gc_bit(g::Pc) | gc_bit(g::Pd) | gc_bit(g::Ps) | gc_bit(g::Pe) |
                         gc_bit(g::Pi) | gc_bit(g::Pf) | gc_bit(g::Po);
  const uint32_t symbol = gc_bit(g::Sm) | gc_bit(g::Sc) | gc_bit(g::Sk) | gc_bit(g::So);
  const uint32_t separator = gc_bit(g::Zs) | gc_bit(g::Zl) | gc_bit(g::Zp);
  const uint32_t other =
      gc_bit(g::Cc) | gc_bit(g::Cf) | gc_bit(g::Cs) | gc_bit(g::Co) | gc_bit(g::Cn);
  struct entry {
    const char* short_name;
    const char* long_name;
    uint32_t mask;
  };
  const entry table[] = {
      {"l", "letter", letter},
      {"lc", "casedletter", gc_bit(g::Lu) | gc_bit(g::Ll) | gc_bit(g::Lt)},
      {"lu", "uppercaseletter", gc_bit(g::Lu)},
      {"ll", "lowercaseletter", gc_bit(g::Ll)},
      {"lt", "titlecaseletter", gc_bit(g::Lt)},
      {"lm", "modifierletter", gc_bit(g::Lm)},
      {"lo", "otherletter", gc_bit(g::Lo)},
      {"m", "mark", mark},
      {"mn", "nonspacingmark", gc_bit(g::Mn)},
      {"mc", "spacingmark", gc_bit(g::Mc)},
      {"me", "enclosingmark", gc_bit(g::Me)},
      {"n", "number", number},
      {"nd", "decimalnumber", gc_bit(g::Nd)},
      {"nl", "letternumber", gc_bit(g::Nl)},
      {"no", "othernumber", gc_bit(g::No)},
      {"p", "punctuation", punct},
      {"pc", "connectorpunctuation", gc_bit(g::Pc)},
      {"pd", "dashpunctuation", gc_bit(g::Pd)},
      {"ps", "openpunctuation", gc_bit(g::Ps)},
      {"pe", "closepunctuation", gc_bit(g::Pe)},
      {"pi", "initialpunctuation", gc_bit(g::Pi)},
      {"pf", "finalpunctuation", gc_bit(g::Pf)},
      {"po", "otherpunctuation", gc_bit(g::Po)},
      {"s", "symbol", symbol},
      {"sm", "mathsymbol", gc_bit(g::Sm)},
      {"sc", "currencysymbol", gc_bit(g::Sc)},
      {"sk", "modifiersymbol", gc_bit(g::Sk)},
      {"so", "othersymbol", gc_bit(g::So)},
      {"z", "separator", separator},
      {"zs", "spaceseparator", gc_bit(g::Zs)},
      {"zl", "lineseparator", gc_bit(g::Zl)},
      {"zp", "paragraphseparator", gc_bit(g::Zp)},
      {"c", "other", other},
      {"cc", "control", gc_bit(g::Cc)},
      {"cf", "format", gc_bit(g::Cf)},
      {"cs", "surrogate", gc_bit(g::Cs)},
      {"co", "privateuse", gc_bit(g::Co)},
      {"cn", "unassigned", gc_bit(g::Cn)},
  };
  for (const entry& e : table) {
    if (key == e.short_name || key == e.long_name) return e.mask;
  }
  return 0;
}

/// Parses a pattern into a tree and its character classes.
class parser {
 public:
  parser(std::string_view pattern, std::vector<char_set>& sets) : p_(pattern), sets_(sets) {}

  bool parse(node& out, std::string& error) {
    out = parse_alt();
    if (error_.empty() && at_ < p_.size()) fail("unmatched ')'");
    if (!error_.empty()) {
      error = error_ + " at byte " + std::to_string(error_at_) + " of the pattern";
      return false;
    }
    return true;
  }

 private:
  std::string_view p_;
  std::vector<char_set>& sets_;
  size_t at_ = 0;
  bool fold_ = false;  ///< case-insensitive at this point
  std::string error_;
  size_t error_at_ = 0;
  int depth_ = 0;

  void fail(std::string what) {
    if (!error_.empty()) return;
    error_ = std::move(what);
    error_at_ = at_;
  }
  bool ok() const { return error_.empty(); }
  bool more() const { return ok() && at_ < p_.size(); }
  char peek(size_t ahead = 0) const { return at_ + ahead < p_.size() ? p_[at_ + ahead] : '\0'; }
  bool eat(std::string_view s) {
    if (p_.substr(at_, s.size()) != s) return false;
    at_ += s.size();
    return true;
  }
  char32_t next_cp() {
    uint32_t len = 0;
    const char32_t cp = decode_utf8(p_.data() + at_, p_.data() + p_.size(), len);
    if (cp >= invalid_base) fail("the pattern is not valid UTF-8");
    at_ += len;
    return cp;
  }

  node parse_alt() {
    if (++depth_ > 200) {
      fail("groups nested too deep");
      return {};
    }
    node alt;
    alt.kind = node::alt;
    alt.kids.push_back(parse_concat());
    while (more() && peek() == '|') {
      ++at_;
      alt.kids.push_back(parse_concat());
    }
    --depth_;
    if (alt.kids.size() == 1) return std::move(alt.kids[0]);
    return alt;
  }

  node parse_concat() {
    node cat;
    cat.kind = node::concat;
    while (more() && peek() != '|' && peek() != ')') {
      node atom;
      if (!parse_atom(atom)) continue;  // an error: more() is now false
      parse_quantifiers(atom);
      cat.kids.push_back(std::move(atom));
    }
    if (cat.kids.empty()) return {};
    if (cat.kids.size() == 1) return std::move(cat.kids[0]);
    return cat;
  }

  /// An interval {n} {n,} {n,m} {,m} at the current position (after '{'): true and its bounds,
  /// or false (then '{' is a literal, as in Oniguruma) with the position unchanged. `exact`:
  /// written {n}.
  bool interval(uint32_t& min, uint32_t& max, bool* exact = nullptr) {
    size_t i = at_ + 1;
    auto number = [&](uint32_t& v) {
      const size_t from = i;
      uint64_t n = 0;
      while (i < p_.size() && p_[i] >= '0' && p_[i] <= '9' && n <= max_repeat) {
        n = n * 10 + static_cast<uint64_t>(p_[i] - '0');
        ++i;
      }
      v = static_cast<uint32_t>(std::min<uint64_t>(n, max_repeat + 1));
      return i > from;
    };
    const bool has_min = number(min);
    if (!has_min) min = 0;
    if (i < p_.size() && p_[i] == '}') {
      if (!has_min) return false;
      max = min;
      if (exact != nullptr) *exact = true;
    } else if (i < p_.size() && p_[i] == ',') {
      ++i;
      if (!number(max)) {
        if (!has_min) return false;
        max = unbounded;
      }
      if (i >= p_.size() || p_[i] != '}') return false;
    } else {
      return false;
    }
    at_ = i + 1;
    return true;
  }

  void parse_quantifiers(node& atom) {
    bool quantified = false;
    while (more()) {
      uint32_t min = 0, max = 0;
      bool exact = false;
      const char c = peek();
      if (c == '*') {
        ++at_;
        max = unbounded;
      } else if (c == '+') {
        ++at_;
        min = 1;
        max = unbounded;
      } else if (c == '?') {
        ++at_;
        max = 1;
      } else if (c == '{' && interval(min, max, &exact)) {
        if ((min > max_repeat) || (max != unbounded && max > max_repeat)) {
          return fail("a repeat count above " + std::to_string(max_repeat));
        }
        if (min > max) return fail("a repeat {n,m} with n > m");
      } else {
        return;
      }
      if (quantified) return fail("a quantifier after a quantifier (possessive or nested)");
      if (atom.kind == node::look) return fail("a quantified lookahead");
      quantified = true;
      node rep;
      rep.kind = node::repeat;
      rep.min = min;
      rep.max = max;
      const bool lazy = more() && peek() == '?';
      if (lazy) ++at_;
      rep.greedy = !lazy || exact;
      rep.kids.push_back(std::move(atom));
      atom = std::move(rep);
      if (lazy && exact) {  // Ruby syntax: a{n}? is (?:a{n})?, not a lazy a{n}
        node optional;
        optional.kind = node::repeat;
        optional.max = 1;
        optional.kids.push_back(std::move(atom));
        atom = std::move(optional);
      }
    }
  }

  node single(op o, uint32_t x) {
    node n;
    n.kind = node::single;
    n.atom.o = o;
    n.atom.x = x;
    return n;
  }

  /// Case-insensitively, any code point with the same simple folding (s, S and ſ for 's').
  node literal(char32_t cp) { return fold_ ? single(op::cp_fold, fold(cp)) : single(op::cp, cp); }

  node set_node(char_set set) {
    set.finish();
    sets_.push_back(std::move(set));
    return single(fold_ ? op::set_fold : op::set, static_cast<uint32_t>(sets_.size() - 1));
  }

  /// False on an error.
  bool parse_atom(node& out) {
    const char c = peek();
    if (c == '(') return parse_group(out);
    if (c == '[') {
      ++at_;
      out = parse_class();
      return true;
    }
    if (c == '.') {
      ++at_;
      out = single(op::any, 0);
      return true;
    }
    if (c == '^' || c == '$') {
      fail("anchors (^ $) are not supported");
      return false;
    }
    if (c == '*' || c == '+' || c == '?') {
      fail("nothing to repeat");
      return false;
    }
    if (c == '{') {
      uint32_t min = 0, max = 0;
      const size_t here = at_;
      if (interval(min, max)) {
        at_ = here;
        fail("nothing to repeat");
        return false;
      }
    }
    if (c == '\\') {
      ++at_;
      char_set set;
      char32_t cp = 0;
      if (!parse_escape(set, cp, false)) return false;
      out = cp == invalid_base ? set_node(std::move(set)) : literal(cp);
      return true;
    }
    out = literal(next_cp());
    return true;
  }

  bool parse_group(node& out) {
    ++at_;  // '('
    if (!eat("?")) return group_body(out, node::empty);
    if (eat(":")) return group_body(out, node::empty);
    if (eat("=")) return group_body(out, node::look, false);
    if (eat("!")) return group_body(out, node::look, true);
    if (peek() == '<' && (peek(1) == '=' || peek(1) == '!')) {
      fail("lookbehind is not supported");
      return false;
    }
    // Options: (?i) (?-i) (?i:...) (?-i:...).
    bool on = true;
    bool fold = fold_;
    bool any = false;
    while (more() && peek() != ':' && peek() != ')') {
      const char f = peek();
      if (f == '-' && on) {
        on = false;
      } else if (f == 'i') {
        fold = on;
        any = true;
      } else {
        fail(std::string("the group (?") + f + " is not supported");
        return false;
      }
      ++at_;
    }
    if (!more()) {
      fail("an unclosed group");
      return false;
    }
    if (!any) {
      fail("an option group without an option");
      return false;
    }
    const bool before = fold_;
    if (eat(")")) {
      // Oniguruma's Ruby syntax: the rest of the enclosing group, its later alternatives
      // included, is one group under the option (a(?i)b|c is a(?i:b|c)).
      fold_ = fold;
      out = parse_alt();
      fold_ = before;
      return ok();
    }
    ++at_;  // ':'
    fold_ = fold;
    const bool r = group_body(out, node::empty);
    fold_ = before;
    return r;
  }

  bool group_body(node& out, node::kind_t kind, bool negative = false) {
    node inner = parse_alt();
    if (!ok()) return false;
    if (!eat(")")) {
      fail("an unclosed group");
      return false;
    }
    if (kind == node::look) {
      out.kind = node::look;
      out.negative = negative;
      out.kids.push_back(std::move(inner));
    } else {
      out = std::move(inner);
    }
    return true;
  }

  static uint32_t hex_value(char c) {
    if (c >= '0' && c <= '9') return static_cast<uint32_t>(c - '0');
    if (c >= 'a' && c <= 'f') return static_cast<uint32_t>(c - 'a' + 10);
    if (c >= 'A' && c <= 'F') return static_cast<uint32_t>(c - 'A' + 10);
    return 16;
  }

  /// After a '\\': a property into `set` (and cp = invalid_base), or one code point in `cp`.
  /// False on error.
  bool parse_escape(char_set& set, char32_t& cp, bool in_class) {
    if (at_ >= p_.size()) {
      fail("a pattern ending in \\");
      return false;
    }
    const char c = p_[at_++];
    cp = invalid_base;
    switch (c) {
      case 't':
        cp = '\t';
        return true;
      case 'n':
        cp = '\n';
        return true;
      case 'r':
        cp = '\r';
        return true;
      case 'f':
        cp = '\f';
        return true;
      case 'v':
        cp = '\v';
        return true;
      case 'a':
        cp = 0x07;
        return true;
      case 'e':
        cp = 0x1B;
        return true;
      case 's':
        set.space = true;
        return true;
      case 'S':
        set.not_space = true;
        return true;
      case 'd':
        set.gc_mask |= gc_bit(gc::Nd);
        return true;
      case 'D':
        set.gc_mask |= all_gc & ~gc_bit(gc::Nd);
        return true;
      case 'w':
        set.word = true;
        return true;
      case 'W':
        set.not_word = true;
        return true;
      case 'p':
      case 'P': {
        if (!eat("{")) {
          fail("\\p without {...}");
          return false;
        }
        const size_t close = p_.find('}', at_);
        if (close == std::string_view::npos) {
          fail("\\p{ without }");
          return false;
        }
        std::string_view name = p_.substr(at_, close - at_);
        bool negate = c == 'P';
        if (!name.empty() && name[0] == '^') {
          negate = !negate;
          name.remove_prefix(1);
        }
        const uint32_t mask = property_mask(name);
        if (mask == 0) {
          fail("the property \\p{" + std::string(name) + "} is not supported");
          return false;
        }
        set.gc_mask |= negate ? all_gc & ~mask : mask;
        at_ = close + 1;
        return true;
      }
      case 'x': {
        uint32_t v = 0;
        if (eat("{")) {
          size_t digits = 0;
          while (at_ < p_.size() && hex_value(p_[at_]) < 16 && digits < 8) {
            v = v * 16 + hex_value(p_[at_++]);
            ++digits;
          }
          if (digits == 0 || !eat("}") || v > 0x10FFFF) {
            fail("a bad \\x{...}");
            return false;
          }
        } else {
          size_t digits = 0;
          while (at_ < p_.size() && hex_value(p_[at_]) < 16 && digits < 2) {
            v = v * 16 + hex_value(p_[at_++]);
            ++digits;
          }
          if (digits == 0) {
            fail("a bad \\x");
            return false;
          }
        }
        cp = v;
        return true;
      }
      case 'u': {
        uint32_t v = 0;
        for (int i = 0; i < 4; ++i) {
          if (at_ >= p_.size() || hex_value(p_[at_]) >= 16) {
            fail("a bad \\u (four hex digits)");
            return false;
          }
          v = v * 16 + hex_value(p_[at_++]);
        }
        cp = v;
        return true;
      }
      case 'b':
        if (in_class) {
          cp = 0x08;
          return true;
        }
        break;
      default:
        break;
    }
    const auto u = static_cast<unsigned char>(c);
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
      --at_;
      fail(std::string("the escape \\") + c + " is not supported");
      return false;
    }
    if (u < 0x80) {
      cp = u;
      return true;
    }
    --at_;
    cp = next_cp();
    return ok();
  }

  node parse_class() {
    char_set set;
    if (eat("^")) set.negated = true;
    bool first = true;
    while (true) {
      if (!more()) {
        fail("an unclosed [");
        return {};
      }
      const char c = peek();
      if (c == ']' && !first) {
        ++at_;
        break;
      }
      first = false;
      if (c == '&' && peek(1) == '&') {
        fail("class intersection (&&) is not supported");
        return {};
      }
      char32_t lo = 0;
      if (!class_atom(set, lo)) return {};
      if (lo == invalid_base) {  // a property: no range from it
        if (peek() == '-' && peek(1) != ']') {
          fail("a range starting at a property");
          return {};
        }
        continue;
      }
      if (peek() == '-' && peek(1) != ']' && at_ + 1 < p_.size()) {
        ++at_;
        char32_t hi = 0;
        if (!class_atom(set, hi)) return {};
        if (hi == invalid_base) {
          fail("a range ending in a property");
          return {};
        }
        if (hi < lo) {
          fail("a range out of order");
          return {};
        }
        set.ranges.emplace_back(lo, hi);
      } else {
        set.ranges.emplace_back(lo, lo);
      }
    }
    return set_node(std::move(set));
  }

  /// One member of a class: a code point in `cp`, or a property added to `set`.
  bool class_atom(char_set& set, char32_t& cp) {
    if (peek() == '\\') {
      ++at_;
      return parse_escape(set, cp, true);
    }
    if (peek() == '[') {  // also at a range's end: [a-[b]] is a nested class to Oniguruma
      fail("nested classes and POSIX brackets are not supported");
      return false;
    }
    cp = next_cp();
    return ok();
  }
};

}  // namespace

struct regex::program {
  std::vector<inst> code;
  std::vector<char_set> sets;
  std::vector<first_set> firsts;  ///< [0]: the whole pattern's
};

namespace {

/// Emits the program of a tree. A repeat of a group is unrolled: min copies, then either a
/// loop or max - min optional copies.
class compiler {
 public:
  explicit compiler(regex::program& p) : p_(p) {}

  /// Empty, or what was wrong.
  std::string emit_all(const node& root) {
    emit(root);
    p_.code.push_back(inst{op::match});
    if (error_.empty()) compute_firsts();
    return error_;
  }

 private:
  regex::program& p_;
  std::string error_;

  uint32_t here() const { return static_cast<uint32_t>(p_.code.size()); }

  /// What can start a match of the one-code-point atom `a`.
  first_set atom_first(const inst& a) const {
    first_set f;
    switch (a.o) {
      case op::cp:
        if (a.x < 128) {
          f.add_ascii(a.x);
        } else {
          f.other_gc = 1u << static_cast<int>(category(a.x));
        }
        return f;
      case op::cp_fold:
        if (a.x >= 128) return first_set::all();
        for (char32_t c = 0; c < 128; ++c) {
          if (fold(c) == a.x) f.add_ascii(c);
        }
        f.other_all = a.x == 'k' || a.x == 's';  // the Kelvin sign, the long s
        return f;
      case op::any:
        f = first_set::all();
        f.ascii[0] &= ~(uint64_t{1} << '\n');
        return f;
      case op::set:
      case op::set_fold: {
        const char_set& cs = p_.sets[a.x];
        f.ascii = a.o == op::set ? cs.ascii : cs.ascii_fold;
        const bool by_category = !cs.negated && !cs.not_space && !cs.word && !cs.not_word &&
                                 a.o == op::set &&
                                 (cs.ranges.empty() || cs.ranges.back().second < 128);
        if (by_category) {
          f.other_gc = cs.gc_mask;
          if (cs.space)
            f.other_gc |= gc_bit(gc::Zs) | gc_bit(gc::Zl) | gc_bit(gc::Zp) | gc_bit(gc::Cc);
        } else {
          f.other_all = true;
        }
        return f;
      }
      default:
        return first_set::all();
    }
  }

  /// What can start a match from `pc` on; memo[pc] is filled in (cycles only pass through
  /// consuming instructions: an unbounded repeat of a nullable body does not compile).
  const first_set& first(uint32_t pc, std::vector<std::optional<first_set>>& memo) {
    if (memo[pc]) return *memo[pc];
    memo[pc] = first_set{};  // in progress: adds nothing
    const inst in = p_.code[pc];
    first_set f;
    switch (in.o) {
      case op::cp:
      case op::cp_fold:
      case op::any:
      case op::set:
      case op::set_fold:
        f = atom_first(in);
        break;
      case op::split:
        f = first(in.x, memo);
        f.add(first(in.y, memo));
        break;
      case op::jmp:
        f = first(in.x, memo);
        break;
      case op::repeat:
        f = atom_first(p_.code[pc + 1]);
        if (in.min == 0) f.add(first(pc + 2, memo));
        break;
      case op::look:
      case op::look_not:
        f = first(in.y, memo);  // a superset: the lookahead only narrows it
        break;
      case op::match:
        f = first_set::all();  // an empty match: anything may follow
        break;
    }
    memo[pc] = f;
    return *memo[pc];
  }

  void compute_firsts() {
    std::vector<std::optional<first_set>> memo(p_.code.size());
    p_.firsts.push_back(first(0, memo));
    for (inst& in : p_.code) {
      if (in.o != op::split) continue;
      in.first_x = static_cast<uint32_t>(p_.firsts.size());
      p_.firsts.push_back(first(in.x, memo));
      in.first_y = static_cast<uint32_t>(p_.firsts.size());
      p_.firsts.push_back(first(in.y, memo));
    }
  }

  size_t push(op o) {
    p_.code.push_back(inst{o});
    return p_.code.size() - 1;
  }

  /// Points a split at `body` first and `out` second, or the other way round when lazy.
  void aim(size_t split, bool greedy, uint32_t body, uint32_t out) {
    p_.code[split].x = greedy ? body : out;
    p_.code[split].y = greedy ? out : body;
  }

  void emit(const node& n) {
    if (!error_.empty()) return;
    if (p_.code.size() > max_program) {
      error_ = "the pattern compiles to too many instructions (large repeat counts)";
      return;
    }
    switch (n.kind) {
      case node::empty:
        return;
      case node::single:
        p_.code.push_back(n.atom);
        return;
      case node::concat:
        for (const node& k : n.kids) emit(k);
        return;
      case node::alt: {
        std::vector<size_t> to_end;
        for (size_t i = 0; i + 1 < n.kids.size(); ++i) {
          const size_t split = push(op::split);
          p_.code[split].x = here();
          emit(n.kids[i]);
          to_end.push_back(push(op::jmp));
          p_.code[split].y = here();
        }
        emit(n.kids.back());
        for (size_t j : to_end) p_.code[j].x = here();
        return;
      }
      case node::repeat:
        emit_repeat(n);
        return;
      case node::look: {
        const size_t at = push(n.negative ? op::look_not : op::look);
        emit(n.kids[0]);
        push(op::match);
        p_.code[at].y = here();
        return;
      }
    }
  }

  void emit_repeat(const node& n) {
    const node& body = n.kids[0];
    if (body.kind == node::single) {
      inst r{op::repeat};
      r.greedy = n.greedy;
      r.min = n.min;
      r.max = n.max;
      p_.code.push_back(r);
      p_.code.push_back(body.atom);
      return;
    }
    for (uint32_t i = 0; i < n.min; ++i) emit(body);
    if (n.max == unbounded) {
      if (nullable(body)) {
        error_ = "an unbounded repeat of something that can match empty";
        return;
      }
      const size_t loop = push(op::split);
      emit(body);
      push(op::jmp);
      p_.code.back().x = static_cast<uint32_t>(loop);
      aim(loop, n.greedy, static_cast<uint32_t>(loop + 1), here());
      return;
    }
    std::vector<size_t> splits;
    for (uint32_t i = n.min; i < n.max && error_.empty(); ++i) {
      splits.push_back(push(op::split));
      emit(body);
    }
    for (size_t s : splits) aim(s, n.greedy, static_cast<uint32_t>(s + 1), here());
  }
};

/// The input of one call, decoded, and the machine's stack. One per thread.
struct machine {
  struct frame {
    uint32_t pc;
    uint32_t pos;
    uint32_t lim;
    uint8_t kind;  ///< 0: resume at (pc, pos); 1: greedy repeat ending at pos down to lim;
                   ///< 2: lazy repeat at pc ending at pos, up to lim
  };
  std::vector<char32_t> cps;
  std::vector<uint8_t> props;  ///< category | ws_bit
  std::vector<uint32_t> offs;  ///< byte offset of each code point, and the text's size
  std::vector<frame> stack;
  const regex::program* prog = nullptr;
  uint64_t steps = 0;
  uint64_t budget = 0;

  static constexpr int64_t failed = -1;
  static constexpr int64_t exhausted = -2;

  void load(std::string_view text) {
    cps.clear();
    props.clear();
    offs.clear();
    const char* p = text.data();
    const char* end = p + text.size();
    while (p < end) {
      uint32_t len = 1;
      const auto b = static_cast<unsigned char>(*p);
      const char32_t cp = b < 0x80 ? b : decode_utf8(p, end, len);
      offs.push_back(static_cast<uint32_t>(p - text.data()));
      cps.push_back(cp);
      props.push_back(char_set::prop_of(cp));
      p += len;
    }
    offs.push_back(static_cast<uint32_t>(text.size()));
    steps = 0;
    budget = 1024 + 256 * static_cast<uint64_t>(cps.size());
  }

  bool atom_at(const inst& a, uint32_t pos) const {
    if (pos >= cps.size()) return false;
    const char32_t c = cps[pos];
    switch (a.o) {
      case op::cp:
        return c == a.x;
      case op::cp_fold:
        return fold(c) == a.x;
      case op::any:
        return c != '\n';
      case op::set:
        return prog->sets[a.x].test(c, props[pos]);
      case op::set_fold:
        return prog->sets[a.x].test_fold(c, props[pos]);
      default:
        return false;
    }
  }

  /// Runs the program from `pc` at code point `pos`: the end of the first match, failed, or
  /// exhausted (the step budget ran out).
  int64_t run(uint32_t pc, uint32_t pos) {
    const std::vector<inst>& code = prog->code;
    const size_t base = stack.size();
    const auto n = static_cast<uint32_t>(cps.size());
    while (true) {
      if (++steps > budget) {
        stack.resize(base);
        return exhausted;
      }
      const inst& in = code[pc];
      bool ok = false;
      switch (in.o) {
        case op::cp:
        case op::cp_fold:
        case op::any:
        case op::set:
        case op::set_fold:
          if (atom_at(in, pos)) {
            ++pos;
            ++pc;
            continue;
          }
          break;
        case op::jmp:
          pc = in.x;
          continue;
        case op::split: {
          if (pos < n) {  // an alternative that cannot start with this code point is skipped
            const bool can_x = prog->firsts[in.first_x].may_start(cps[pos], props[pos]);
            const bool can_y = prog->firsts[in.first_y].may_start(cps[pos], props[pos]);
            if (!can_y) {
              if (!can_x) break;
              pc = in.x;
              continue;
            }
            if (!can_x) {
              pc = in.y;
              continue;
            }
          }
          stack.push_back(frame{in.y, pos, 0, 0});
          pc = in.x;
          continue;
        }
        case op::repeat: {
          const inst& atom = code[pc + 1];
          const uint32_t need = pos + in.min;
          if (in.min > n - pos) break;
          const uint32_t limit = in.max == unbounded || in.max > n - pos ? n : pos + in.max;
          uint32_t p = pos;
          while (p < need && atom_at(atom, p)) ++p;
          steps += p - pos;
          if (p < need) break;
          if (in.greedy) {
            while (p < limit && atom_at(atom, p)) ++p;
            steps += p - need;
            if (p > need) stack.push_back(frame{pc + 2, p, need, 1});
          } else if (need < limit) {
            stack.push_back(frame{pc, need, limit, 2});
          }
          pos = p;
          pc += 2;
          continue;
        }
        case op::look:
        case op::look_not: {
          const int64_t r = run(pc + 1, pos);
          if (r == exhausted) {
            stack.resize(base);
            return exhausted;
          }
          ok = (r >= 0) == (in.o == op::look);
          if (ok) {
            pc = in.y;
            continue;
          }
          break;
        }
        case op::match:
          stack.resize(base);
          return pos;
      }
      // Backtrack.
      while (true) {
        if (stack.size() == base) return failed;
        frame& f = stack.back();
        if (f.kind == 0) {
          pc = f.pc;
          pos = f.pos;
          stack.pop_back();
          break;
        }
        if (f.kind == 1) {
          pos = --f.pos;
          pc = f.pc;
          if (f.pos == f.lim) stack.pop_back();
          break;
        }
        ++steps;
        if (atom_at(code[f.pc + 1], f.pos)) {
          pos = ++f.pos;
          pc = f.pc + 2;
          if (f.pos >= f.lim) stack.pop_back();
          break;
        }
        stack.pop_back();
      }
    }
  }

  /// The leftmost match starting at or after code point `from`: (begin, end) in code points,
  /// or begin = failed / exhausted.
  std::pair<int64_t, int64_t> search(uint32_t from) {
    const first_set& start = prog->firsts[0];
    const auto n = static_cast<uint32_t>(cps.size());
    for (uint32_t s = from; s <= n; ++s) {
      if (s < n && !start.may_start(cps[s], props[s])) continue;
      const int64_t r = run(0, s);
      if (r == exhausted) return {exhausted, 0};
      if (r >= 0) return {s, r};
    }
    return {failed, 0};
  }
};

machine& local_machine(const regex::program* prog) {
  thread_local machine m;
  m.prog = prog;
  return m;
}

}  // namespace

regex::regex(std::unique_ptr<const program> p) : prog_(std::move(p)) {}
regex::regex(regex&&) noexcept = default;
regex& regex::operator=(regex&&) noexcept = default;
regex::~regex() = default;

std::optional<regex> regex::compile(std::string_view pattern, std::string& error) {
  auto prog = std::make_unique<program>();
  node root;
  parser parse(pattern, prog->sets);
  if (!parse.parse(root, error)) return std::nullopt;
  error = compiler(*prog).emit_all(root);
  if (!error.empty()) return std::nullopt;
  return regex(std::move(prog));
}

bool regex::find_all(std::string_view utf8_text, std::vector<span>& out) const {
  machine& m = local_machine(prog_.get());
  m.load(utf8_text);
  const auto n = static_cast<uint32_t>(m.cps.size());
  uint32_t from = 0;
  while (from < n) {
    const auto [begin, end] = m.search(from);
    if (begin == machine::failed) return true;
    if (begin == machine::exhausted) {
      out.push_back(span{m.offs[from], m.offs[n]});
      return false;
    }
    if (end == begin) {  // empty: move on by one code point
      from = static_cast<uint32_t>(begin) + 1;
      continue;
    }
    out.push_back(span{m.offs[static_cast<size_t>(begin)], m.offs[static_cast<size_t>(end)]});
    from = static_cast<uint32_t>(end);
  }
  return true;
}

std::optional<regex::span> regex::search(std::string_view utf8_text, size_t from) const {
  machine& m = local_machine(prog_.get());
  m.load(utf8_text);
  const auto start = static_cast<uint32_t>(
      std::lower_bound(m.offs.begin(), m.offs.end(), static_cast<uint32_t>(from)) - m.offs.begin());
  const auto [begin, end] = m.search(start);
  if (begin < 0) return std::nullopt;
  return span{m.offs[static_cast<size_t>(begin)], m.offs[static_cast<size_t>(end)]};
}

}  // namespace tc::text
