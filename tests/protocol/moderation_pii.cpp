// protocol/moderation/pii.cpp and moderation.cpp: ID card and Luhn checks, PII scanning,
// action names, masking; random bytes never make the scanner read out of bounds.
#include <doctest/doctest.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "protocol/moderation/moderation.hpp"
#include "protocol/moderation/pii.hpp"

using namespace tc::moderation;

namespace {

/// 17 digits + the ISO 7064 MOD 11-2 check character, computed here independently.
std::string with_check(const std::string& body17) {
  const int weights[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
  int sum = 0;
  for (int i = 0; i < 17; ++i) sum += (body17[i] - '0') * weights[i];
  return body17 + "10X98765432"[sum % 11];
}

/// Digits + the Luhn check digit, computed here independently.
std::string with_luhn(const std::string& body) {
  for (char d = '0'; d <= '9'; ++d) {
    const std::string s = body + d;
    int sum = 0;
    for (size_t i = 0; i < s.size(); ++i) {
      int v = s[s.size() - 1 - i] - '0';
      if (i % 2 == 1) v = v * 2 > 9 ? v * 2 - 9 : v * 2;
      sum += v;
    }
    if (sum % 10 == 0) return s;
  }
  return body;
}

/// find_pii on a heap copy of exactly text.size() bytes, so ASan sees any read past the end.
std::vector<pii_match> scan_exact(const std::string& text) {
  std::unique_ptr<char[]> buf(new char[text.size()]);
  if (!text.empty()) std::memcpy(buf.get(), text.data(), text.size());
  return find_pii(std::string_view(buf.get(), text.size()));
}

/// `n` as three digits, zero padded.
std::string pad3(int n) {
  const std::string d = std::to_string(n % 1000);
  return std::string(3 - d.size(), '0') + d;
}

std::vector<pii_match> one(pii_kind k, uint32_t b, uint32_t e) {
  return {pii_match{k, b, e}};
}

const std::string id_a = with_check("11010519491231002");  // a valid ID, built by the test

}  // namespace

TEST_CASE("action names round trip, unknown names are refused, strongest picks the max") {
  for (action a : {action::allow, action::flag, action::mask, action::block}) {
    action back = action::allow;
    REQUIRE(parse_action(action_name(a), back));
    CHECK(back == a);
  }
  CHECK(action_name(action::mask) == "mask");
  action a = action::flag;
  CHECK_FALSE(parse_action("Block", a));
  CHECK_FALSE(parse_action("", a));
  CHECK_FALSE(parse_action("deny", a));
  CHECK(a == action::flag);

  CHECK(strongest({}) == action::allow);
  CHECK(strongest({hit{0, 1, "a", action::flag}, hit{2, 3, "b", action::mask}}) == action::mask);
  CHECK(strongest({hit{0, 1, "a", action::block}, hit{2, 3, "b", action::flag}}) == action::block);

  for (pii_kind k : {pii_kind::id_card, pii_kind::phone, pii_kind::bank_card, pii_kind::email}) {
    pii_kind back = pii_kind::email;
    REQUIRE(parse_pii_kind(pii_kind_name(k), back));
    CHECK(back == k);
  }
  pii_kind k = pii_kind::phone;
  CHECK_FALSE(parse_pii_kind("mobile", k));
  CHECK(k == pii_kind::phone);
  CHECK(pii_kind_name(pii_kind::bank_card) == "bank_card");
}

TEST_CASE("apply_masks: one star per code point, overlaps merge, other hits untouched") {
  const std::string text = "abc炸弹def";  // 炸弹 = bytes [3, 9)
  CHECK(apply_masks(text, {}) == text);
  CHECK(apply_masks(text, {hit{3, 9, "x", action::mask}}) == "abc**def");
  CHECK(apply_masks(text, {hit{3, 9, "x", action::block}}) == text);
  CHECK(apply_masks(text, {hit{3, 9, "x", action::flag}}) == text);
  // Overlapping and unordered: [4,6) is inside [3,9) with [0,2) listed last.
  CHECK(apply_masks(text, {hit{3, 9, "x", action::mask}, hit{1, 4, "y", action::mask},
                           hit{0, 2, "z", action::mask}}) == "*****def");
  CHECK(apply_masks(text, {hit{9, 12, "x", action::mask}, hit{0, 3, "y", action::mask}}) ==
        "***炸弹***");
  // Touching ranges; an empty range; a range past the end is clamped.
  CHECK(apply_masks(text, {hit{0, 1, "x", action::mask}, hit{1, 2, "x", action::mask}}) ==
        "**c炸弹def");
  CHECK(apply_masks(text, {hit{2, 2, "x", action::mask}}) == text);
  CHECK(apply_masks(text, {hit{10, 100, "x", action::mask}}) == "abc炸弹d**");
  CHECK(apply_masks(text, {hit{50, 100, "x", action::mask}}) == text);
  // Four-byte code points, and malformed bytes count one star each.
  CHECK(apply_masks("a\xF0\x9F\x98\x80z", {hit{1, 5, "e", action::mask}}) == "a*z");
  CHECK(apply_masks("a\xE4\xB8z", {hit{1, 3, "e", action::mask}}) == "a**z");
  CHECK(apply_masks("\x80\x80", {hit{0, 2, "e", action::mask}}) == "**");
}

TEST_CASE("Luhn") {
  CHECK(luhn_valid("4111111111111111"));
  CHECK_FALSE(luhn_valid("4111111111111112"));
  CHECK(luhn_valid("79927398713"));
  CHECK_FALSE(luhn_valid("79927398710"));
  CHECK(luhn_valid("5555555555554444"));
  CHECK(luhn_valid("6011111111111117"));
  CHECK(luhn_valid("378282246310005"));
  CHECK_FALSE(luhn_valid(""));
  CHECK_FALSE(luhn_valid("4111 1111 1111 1111"));
  CHECK_FALSE(luhn_valid("411111111111111a"));
  CHECK(luhn_valid(with_luhn("621226120200123456")));
}

TEST_CASE("ID card: checksum, region, birth date") {
  CHECK(id_a.size() == 18);
  CHECK(valid_id_card(id_a));
  // Changing any one of the 17 digits breaks the checksum.
  for (size_t i = 0; i < 17; ++i) {
    std::string bad = id_a;
    bad[i] = static_cast<char>('0' + (bad[i] - '0' + 1) % 10);
    CHECK_MESSAGE(!valid_id_card(bad), "position ", i);
  }
  // Every wrong check character is refused.
  for (char c : std::string("0123456789X")) {
    if (c == id_a[17]) continue;
    std::string bad = id_a;
    bad[17] = c;
    CHECK_FALSE(valid_id_card(bad));
  }

  // An X check character, upper or lower case.
  std::string with_x;
  for (int seq = 0; seq < 1000 && with_x.empty(); ++seq) {
    const std::string id = with_check("44030419880808" + pad3(seq));
    if (id[17] == 'X') with_x = id;
  }
  REQUIRE(with_x.size() == 18);
  CHECK(valid_id_card(with_x));
  std::string lower = with_x;
  lower[17] = 'x';
  CHECK(valid_id_card(lower));

  CHECK(valid_id_card(with_check("11010520000229123")));        // leap day
  CHECK_FALSE(valid_id_card(with_check("11010519000229123")));  // 1900 is not a leap year
  CHECK_FALSE(valid_id_card(with_check("11010519900230123")));  // Feb 30
  CHECK_FALSE(valid_id_card(with_check("11010519901301123")));  // month 13
  CHECK_FALSE(valid_id_card(with_check("11010519900100123")));  // day 0
  CHECK_FALSE(valid_id_card(with_check("11010518991231123")));  // before 1900
  CHECK_FALSE(valid_id_card(with_check("91010519900101123")));  // region 9
  CHECK_FALSE(valid_id_card(with_check("01010519900101123")));  // region 0
  CHECK(valid_id_card(with_check("81000019900101123")));        // region 8
  // Born next year: in the future.
  const auto today = std::chrono::year_month_day{
      std::chrono::floor<std::chrono::days>(std::chrono::system_clock::now())};
  const int next_year = static_cast<int>(today.year()) + 1;
  CHECK_FALSE(valid_id_card(with_check("110105" + std::to_string(next_year) + "0101123")));
  CHECK(valid_id_card(with_check("110105" + std::to_string(next_year - 2) + "0101123")));

  CHECK_FALSE(valid_id_card(""));
  CHECK_FALSE(valid_id_card(id_a.substr(0, 17)));
  CHECK_FALSE(valid_id_card(id_a + "1"));
  CHECK_FALSE(valid_id_card("1101051949123100 2"));
}

TEST_CASE("phones: bare, with +86/86 prefix, grouped 3-4-4, next to CJK text") {
  CHECK(scan_exact("13812345678") == one(pii_kind::phone, 0, 11));
  CHECK(scan_exact("我的电话13812345678谢谢") == one(pii_kind::phone, 12, 23));
  CHECK(scan_exact("call 19912345678.") == one(pii_kind::phone, 5, 16));
  CHECK(scan_exact("+8613812345678") == one(pii_kind::phone, 0, 14));
  CHECK(scan_exact("tel:+86 13812345678") == one(pii_kind::phone, 4, 19));
  CHECK(scan_exact("+86-13812345678") == one(pii_kind::phone, 0, 15));
  CHECK(scan_exact("电话8613812345678") == one(pii_kind::phone, 6, 19));
  CHECK(scan_exact("138 1234 5678") == one(pii_kind::phone, 0, 13));
  CHECK(scan_exact("(138-1234-5678)") == one(pii_kind::phone, 1, 14));
  CHECK(scan_exact("+86 138 1234 5678") == one(pii_kind::phone, 0, 17));
  CHECK(scan_exact("手机：+86-138-1234-5678。") == one(pii_kind::phone, 9, 26));

  CHECK(scan_exact("12812345678").empty());   // 12x is not a mobile prefix
  CHECK(scan_exact("1381234567").empty());    // 10 digits
  CHECK(scan_exact("138123456789").empty());  // 12 digits
  CHECK(scan_exact("a13812345678").empty());  // touches a letter
  CHECK(scan_exact("13812345678b").empty());
  CHECK(scan_exact("138-1234 5678").empty());    // mixed separators
  CHECK(scan_exact("138  1234  5678").empty());  // double spaces
  CHECK(scan_exact("0.13812345678").empty());    // part of a decimal number
  CHECK(scan_exact("13812345678.5").empty());
  // Two phones in a row.
  CHECK(scan_exact("13812345678,13912345678") ==
        std::vector<pii_match>{{pii_kind::phone, 0, 11}, {pii_kind::phone, 12, 23}});
}

TEST_CASE("ID cards in text: contiguous, with X, grouped 6-8-4, priority over bank card") {
  CHECK(scan_exact(id_a) == one(pii_kind::id_card, 0, 18));
  CHECK(scan_exact("身份证号" + id_a + "。") == one(pii_kind::id_card, 12, 30));
  std::string bad = id_a;
  bad[5] = static_cast<char>('0' + (bad[5] - '0' + 3) % 10);
  CHECK(scan_exact(bad).empty() == !luhn_valid(bad));  // a broken ID is at most a bank card
  if (luhn_valid(bad)) CHECK(scan_exact(bad) == one(pii_kind::bank_card, 0, 18));
  CHECK(scan_exact("x" + id_a).empty());
  CHECK(scan_exact(id_a + "9").empty());

  std::string with_x;
  for (int seq = 0; seq < 1000 && with_x.empty(); ++seq) {
    const std::string id = with_check("32010219770707" + pad3(seq));
    if (id[17] == 'X') with_x = id;
  }
  REQUIRE(with_x.size() == 18);
  CHECK(scan_exact("ID " + with_x + " ok") == one(pii_kind::id_card, 3, 21));
  with_x[17] = 'x';
  CHECK(scan_exact(with_x) == one(pii_kind::id_card, 0, 18));
  CHECK(scan_exact(with_x + "y").empty());

  const std::string grouped = id_a.substr(0, 6) + " " + id_a.substr(6, 8) + " " + id_a.substr(14);
  CHECK(scan_exact("号码 " + grouped) == one(pii_kind::id_card, 7, 27));
  const std::string dashed = id_a.substr(0, 6) + "-" + id_a.substr(6, 8) + "-" + id_a.substr(14);
  CHECK(scan_exact(dashed) == one(pii_kind::id_card, 0, 20));

  // A valid ID that also passes Luhn is reported once, as an ID card.
  std::string both;
  for (int seq = 0; seq < 1000 && both.empty(); ++seq) {
    const std::string id = with_check("51010719850615" + pad3(seq));
    if (id[17] != 'X' && luhn_valid(id)) both = id;
  }
  REQUIRE(both.size() == 18);
  CHECK(scan_exact(both) == one(pii_kind::id_card, 0, 18));
}

TEST_CASE("bank cards: Luhn, grouped by 4, priority below phone") {
  CHECK(scan_exact("4111111111111111") == one(pii_kind::bank_card, 0, 16));
  CHECK(scan_exact("4111111111111112").empty());
  CHECK(scan_exact("卡号4111 1111 1111 1111，") == one(pii_kind::bank_card, 6, 25));
  CHECK(scan_exact("4111-1111-1111-1111") == one(pii_kind::bank_card, 0, 19));
  CHECK(scan_exact("4111 1111-1111 1111").empty());  // mixed separators
  CHECK(scan_exact("4111 1111 1111 1112").empty());
  CHECK(scan_exact("card 378282246310005 ok") == one(pii_kind::bank_card, 5, 20));

  const std::string card19 = with_luhn("621226120200123456");
  REQUIRE(luhn_valid(card19));
  CHECK(scan_exact(card19) == one(pii_kind::bank_card, 0, 19));
  const std::string grouped19 = card19.substr(0, 4) + " " + card19.substr(4, 4) + " " +
                                card19.substr(8, 4) + " " + card19.substr(12, 4) + " " +
                                card19.substr(16);
  CHECK(scan_exact(grouped19) == one(pii_kind::bank_card, 0, 23));
  CHECK(scan_exact(grouped19 + "1").empty());           // 20 digits
  CHECK(scan_exact("0000 " + grouped19).empty());       // 23 digits in one grouping
  CHECK(scan_exact("12 3456 7890 1234 5678").empty());  // first group not 4
  CHECK(scan_exact(with_luhn("41111111111")).empty());  // 12 digits: too short
  CHECK(scan_exact(with_luhn("411111111111")) == one(pii_kind::bank_card, 0, 13));
  CHECK(scan_exact(with_luhn("41111111111111111111")).empty());  // 21 digits

  // 86 + mobile, 13 digits, that also passes Luhn: a phone.
  std::string phone13;
  for (int last = 0; last < 10000 && phone13.empty(); ++last) {
    const std::string s = "861381234" + std::to_string(1000 + last % 9000);
    if (s.size() == 13 && luhn_valid(s)) phone13 = s;
  }
  REQUIRE(phone13.size() == 13);
  CHECK(scan_exact(phone13) == one(pii_kind::phone, 0, 13));
}

TEST_CASE("emails") {
  CHECK(scan_exact("user@qq.com") == one(pii_kind::email, 0, 11));
  CHECK(scan_exact("联系john.doe+tag@mail.example.com.cn谢谢") == one(pii_kind::email, 6, 38));
  CHECK(scan_exact("mail bob_1@example.org.") == one(pii_kind::email, 5, 22));
  CHECK(scan_exact("<a-b@sub-domain.example.io>") == one(pii_kind::email, 1, 26));
  CHECK(scan_exact("x@y.c").empty());  // one-letter TLD
  CHECK(scan_exact("@example.com").empty());
  CHECK(scan_exact("bob@").empty());
  CHECK(scan_exact("bob@localhost").empty());  // no TLD
  CHECK(scan_exact("bob@-bad.com").empty());
  CHECK(scan_exact("bob.@example.com").empty());
  CHECK(scan_exact("bob@example.123").empty());
  CHECK(scan_exact("bob@example.com.123") == one(pii_kind::email, 0, 15));
  CHECK(scan_exact("john..doe@x.com") == one(pii_kind::email, 6, 15));
  CHECK(scan_exact("..doe@x.com") == one(pii_kind::email, 2, 11));
  CHECK(scan_exact(std::string(64, 'a') + "@x.com") == one(pii_kind::email, 0, 70));
  CHECK(scan_exact(std::string(65, 'a') + "@x.com").empty());
  // A QQ address whose local part is a phone-like number is one e-mail, not a phone.
  CHECK(scan_exact("13812345678@qq.com") == one(pii_kind::email, 0, 18));
  CHECK(scan_exact("a@b.com@c.org") == one(pii_kind::email, 0, 7));
}

TEST_CASE("several kinds in one text come ordered and separate") {
  const std::string text = "张三，身份证" + id_a +
                           "，手机138-1234-5678，邮箱 zs@example.cn，卡号 " +
                           "4111111111111111；备用+8613912345678";
  const auto found = scan_exact(text);
  REQUIRE(found.size() == 5);
  const pii_kind kinds[] = {pii_kind::id_card, pii_kind::phone, pii_kind::email,
                            pii_kind::bank_card, pii_kind::phone};
  const char* spans[] = {nullptr, "138-1234-5678", "zs@example.cn", "4111111111111111",
                         "+8613912345678"};
  for (size_t i = 0; i < found.size(); ++i) {
    CHECK(found[i].kind == kinds[i]);
    const std::string span = text.substr(found[i].begin, found[i].end - found[i].begin);
    CHECK(span == (spans[i] ? std::string(spans[i]) : id_a));
    if (i > 0) CHECK(found[i - 1].end <= found[i].begin);
  }
  CHECK(scan_exact("").empty());
  CHECK(scan_exact("没有个人信息 no personal data, 2024-05-01, 3.14159265358979").empty());
}

TEST_CASE("random bytes: in bounds, ordered, disjoint, and every match re-validates") {
  std::mt19937 rng(20240501);
  const std::string alphabet = "0123456789012345678901234567890123456789 -+@.xXab86\xE4\xB8\xAD";
  std::uniform_int_distribution<int> len_dist(0, 120);
  std::uniform_int_distribution<int> pick(0, static_cast<int>(alphabet.size()) - 1);
  std::uniform_int_distribution<int> byte(0, 255);
  size_t total = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string s(static_cast<size_t>(len_dist(rng)), '\0');
    for (char& c : s) {
      c = iter % 3 == 0 ? static_cast<char>(byte(rng)) : alphabet[static_cast<size_t>(pick(rng))];
    }
    // Seed some real numbers in the noise.
    if (iter % 5 == 1) s.insert(s.size() / 2, id_a);
    if (iter % 5 == 2) s.insert(s.size() / 2, "4111 1111 1111 1111");
    if (iter % 5 == 3) s.insert(s.size() / 2, "+86 138 1234 5678");
    const auto found = scan_exact(s);
    total += found.size();
    uint32_t prev_end = 0;
    for (const pii_match& m : found) {
      REQUIRE(m.begin < m.end);
      REQUIRE(m.end <= s.size());
      REQUIRE(m.begin >= prev_end);
      prev_end = m.end;
      std::string digits;
      for (size_t i = m.begin; i < m.end; ++i) {
        if ((s[i] >= '0' && s[i] <= '9') || s[i] == 'X' || s[i] == 'x') digits += s[i];
      }
      if (m.kind == pii_kind::id_card) CHECK(valid_id_card(digits));
      if (m.kind == pii_kind::bank_card) CHECK(luhn_valid(digits));
      if (m.kind == pii_kind::phone) CHECK((digits.size() == 11 || digits.size() == 13));
      if (m.kind == pii_kind::email) CHECK(s.find('@', m.begin) < m.end);
    }
  }
  CHECK(total > 100);  // the seeded numbers are found through the noise
}
