// protocol/accounts/accounts.cpp: role names, slugs and the other validators, globs, secrets.
#include <doctest/doctest.h>

#include <chrono>
#include <set>
#include <string>

#include "protocol/accounts/accounts.hpp"

using namespace tc::accounts;

namespace {

void fill(uint8_t (&bytes)[32], uint8_t first, uint8_t step) {
  for (int i = 0; i < 32; ++i) bytes[i] = static_cast<uint8_t>(first + step * i);
}

}  // namespace

TEST_CASE("role names round trip and unknown names are refused") {
  for (role r : {role::viewer, role::operator_, role::owner}) {
    role back = role::viewer;
    REQUIRE(parse_role(role_name(r), back));
    CHECK(back == r);
  }
  CHECK(role_name(role::viewer) == "viewer");
  CHECK(role_name(role::operator_) == "operator");
  CHECK(role_name(role::owner) == "owner");

  role r = role::owner;
  CHECK_FALSE(parse_role("", r));
  CHECK_FALSE(parse_role("Owner", r));
  CHECK_FALSE(parse_role("operator_", r));
  CHECK_FALSE(parse_role("admin", r));
  CHECK(r == role::owner);  // untouched on failure
  CHECK(role::viewer < role::operator_);
  CHECK(role::operator_ < role::owner);
}

TEST_CASE("slugs") {
  CHECK(valid_slug("a"));
  CHECK(valid_slug("0"));
  CHECK(valid_slug("acme"));
  CHECK(valid_slug("acme-corp_2"));
  CHECK(valid_slug("9lives"));
  CHECK(valid_slug(std::string(64, 'x')));
  CHECK_FALSE(valid_slug(std::string(65, 'x')));
  CHECK_FALSE(valid_slug(""));
  CHECK_FALSE(valid_slug("-acme"));
  CHECK_FALSE(valid_slug("_acme"));
  CHECK_FALSE(valid_slug("Acme"));
  CHECK_FALSE(valid_slug("acme corp"));
  CHECK_FALSE(valid_slug("acme.corp"));
  CHECK_FALSE(valid_slug("acme/web"));
  CHECK_FALSE(valid_slug("caf\xc3\xa9"));
  CHECK_FALSE(valid_slug(std::string("ac\0me", 5)));
  CHECK(valid_slug("a-"));
  CHECK(valid_slug("a_"));
}

TEST_CASE("environments, endpoints, currencies") {
  CHECK(valid_environment("dev"));
  CHECK(valid_environment("staging"));
  CHECK(valid_environment("prod"));
  CHECK_FALSE(valid_environment("production"));
  CHECK_FALSE(valid_environment("Prod"));
  CHECK_FALSE(valid_environment(""));

  for (const char* e : {"chat", "completions", "embeddings", "models"}) CHECK(valid_endpoint(e));
  CHECK_FALSE(valid_endpoint("chat/completions"));
  CHECK_FALSE(valid_endpoint("messages"));
  CHECK_FALSE(valid_endpoint(""));

  CHECK(valid_currency("CNY"));
  CHECK(valid_currency("USD"));
  CHECK_FALSE(valid_currency("usd"));
  CHECK_FALSE(valid_currency("EUR"));
  CHECK_FALSE(valid_currency(""));
}

TEST_CASE("glob_match: literals, ? and *") {
  CHECK(glob_match("", ""));
  CHECK_FALSE(glob_match("", "a"));
  CHECK(glob_match("*", ""));
  CHECK(glob_match("*", "anything at all"));
  CHECK(glob_match("**", ""));
  CHECK(glob_match("gpt-4", "gpt-4"));
  CHECK_FALSE(glob_match("gpt-4", "gpt-4o"));
  CHECK_FALSE(glob_match("gpt-4o", "gpt-4"));
  CHECK(glob_match("gpt-4*", "gpt-4"));
  CHECK(glob_match("gpt-4*", "gpt-4o-mini"));
  CHECK_FALSE(glob_match("gpt-4*", "gpt-3.5"));
  CHECK(glob_match("*-mini", "gpt-4o-mini"));
  CHECK_FALSE(glob_match("*-mini", "gpt-4o-mini2"));

  CHECK(glob_match("?", "a"));
  CHECK_FALSE(glob_match("?", ""));
  CHECK_FALSE(glob_match("?", "ab"));
  CHECK(glob_match("??", "ab"));
  CHECK(glob_match("gpt-?o", "gpt-4o"));
  CHECK_FALSE(glob_match("gpt-?o", "gpt-4"));
  CHECK(glob_match("?*", "x"));
  CHECK_FALSE(glob_match("?*", ""));
  // `?` is one byte, not one character.
  CHECK(glob_match("caf??", "caf\xc3\xa9"));
  CHECK_FALSE(glob_match("caf?", "caf\xc3\xa9"));

  CHECK(glob_match("a*b*c", "abc"));
  CHECK(glob_match("a*b*c", "aXbYc"));
  CHECK(glob_match("a*b*c", "abbbcbc"));
  CHECK(glob_match("a*b*c", "acbc"));
  CHECK_FALSE(glob_match("a*b*c", "acb"));
  CHECK_FALSE(glob_match("a*b*c", "abcx"));
  CHECK(glob_match("a*", "a"));
  CHECK(glob_match("a**", "abc"));
  CHECK(glob_match("*a", "bba"));
  CHECK_FALSE(glob_match("*a", "bab"));
  CHECK(glob_match("*ab", "aab"));  // needs the star to give back what it took
  CHECK(glob_match("*aab", "aaab"));
  CHECK(glob_match("a*?c", "abc"));
  CHECK_FALSE(glob_match("a*?c", "ac"));

  // Metacharacters in the text are plain bytes.
  CHECK(glob_match("*", "*"));
  CHECK(glob_match("*", "*x"));
  CHECK(glob_match("a*", "a*b"));
  CHECK_FALSE(glob_match("a?", "a"));
  CHECK(glob_match("\\*", "\\abc"));  // no escapes: the backslash is literal
}

TEST_CASE("glob_match: pathological patterns finish quickly") {
  const std::string text(100'000, 'a');
  const auto start = std::chrono::steady_clock::now();
  CHECK_FALSE(glob_match("a*a*a*a*b", text));
  CHECK_FALSE(glob_match("*a*a*a*a*a*a*a*a*a*a*b", text));
  CHECK(glob_match("a*a*a*a*a", text));
  CHECK(glob_match("*a*a*a*a*", text));
  CHECK_FALSE(glob_match(std::string(100, '*') + "b", text));
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - start)
                      .count();
  // A backtracking-recursive matcher takes hours here; this one is a few ms even under ASan.
  CHECK(ms < 2000);
}

TEST_CASE("make_secret: scheme, 43 base64url characters, no padding") {
  uint8_t zero[32] = {};
  const std::string s = make_secret(key_scheme, zero);
  CHECK(s == "sk-tc-" + std::string(43, 'A'));

  uint8_t seq[32];
  fill(seq, 0, 1);
  // python3 base64.urlsafe_b64encode(bytes(range(32))) without '='.
  CHECK(make_secret(key_scheme, seq) == "sk-tc-AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8");

  uint8_t ones[32];
  fill(ones, 0xff, 0);
  // All ones: 42 x '_' then 16 bits left over (1111 11|11 1111 11|00) -> '8' at the end.
  CHECK(make_secret(admin_scheme, ones) == "tc-adm-" + std::string(42, '_') + "8");

  uint8_t any[32];
  fill(any, 7, 37);
  const std::string k = make_secret(key_scheme, any);
  REQUIRE(k.size() == 6 + 43);
  CHECK(k.substr(0, 6) == key_scheme);
  for (char c : k.substr(6)) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_';
    CHECK(ok);
  }
  CHECK(make_secret(admin_scheme, any).size() == 7 + 43);
  CHECK(make_secret(admin_scheme, any).substr(7) == k.substr(6));
}

TEST_CASE("make_secret: distinct bytes give distinct secrets") {
  std::set<std::string> seen;
  uint8_t bytes[32] = {};
  // Flipping any single bit of the input changes the secret.
  seen.insert(make_secret(key_scheme, bytes));
  for (int byte = 0; byte < 32; ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      bytes[byte] = static_cast<uint8_t>(1u << bit);
      CHECK(seen.insert(make_secret(key_scheme, bytes)).second);
      bytes[byte] = 0;
    }
  }
  CHECK(seen.size() == 1 + 32 * 8);
}

TEST_CASE("secret_prefix") {
  uint8_t seq[32];
  fill(seq, 0, 1);
  const std::string s = make_secret(key_scheme, seq);
  CHECK(secret_prefix(s) == "sk-tc-AAECAw");
  CHECK(secret_prefix(s).size() == 12);
  CHECK(secret_prefix("short") == "short");
  CHECK(secret_prefix("") == "");
  CHECK(secret_prefix("exactly12chr") == "exactly12chr");
}

TEST_CASE("secret_hash: lowercase hex SHA-256") {
  // printf %s '' | sha256sum ; printf %s abc | sha256sum
  CHECK(secret_hash("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(secret_hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // printf %s sk-tc-AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8 | sha256sum
  uint8_t seq[32];
  fill(seq, 0, 1);
  CHECK(secret_hash(make_secret(key_scheme, seq)) ==
        "af68488491862df11db2a219dfd351621639edc8e995ebbb3c791b8a40b88719");
  // printf %s sk-tc-AAA...A (43 x A) | sha256sum
  uint8_t zero[32] = {};
  CHECK(secret_hash(make_secret(key_scheme, zero)) ==
        "19f92a6031c6d10614fa9d1267bc56d1d04dff342b1f052eb07916bd03a25e84");
  // Embedded NUL bytes are hashed, not treated as the end.
  CHECK(secret_hash(std::string("a\0b", 3)) != secret_hash("a"));
  const std::string h = secret_hash("x");
  REQUIRE(h.size() == 64);
  for (char c : h) CHECK(((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')));
}

TEST_CASE("request_priority: the key's own, lowered freely, raised only to max_priority") {
  api_key k;
  k.priority = 2;
  CHECK(request_priority(&k, 0, 255) == 2);  // no header: the key's, not the tenant's
  CHECK(request_priority(&k, 0, 4) == 4);    // lowered
  CHECK(request_priority(&k, 0, 2) == 2);
  CHECK(request_priority(&k, 0, 0) == 2);  // max_priority 4 (default): no raise
  k.max_priority = 1;
  CHECK(request_priority(&k, 4, 0) == 1);  // raised as far as allowed
  CHECK(request_priority(&k, 4, 1) == 1);
  CHECK(request_priority(&k, 4, 3) == 3);
  k.max_priority = 0;
  CHECK(request_priority(&k, 4, 0) == 0);
  // Anonymous: the tenant's tier, never raised.
  CHECK(request_priority(nullptr, 3, 255) == 3);
  CHECK(request_priority(nullptr, 3, 0) == 3);
  CHECK(request_priority(nullptr, 3, 4) == 4);
  CHECK(request_priority(nullptr, 9, 255) == 4);  // out of range: the lowest
}
