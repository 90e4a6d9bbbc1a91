// Names, validation, globs and secrets of the account model. Pure; any thread.
#include "protocol/accounts/accounts.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace tc::accounts {

namespace {

bool slug_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

/// SHA-256, fetched once: OpenSSL 3 looks an implicit EVP_sha256() up again on every use.
const EVP_MD* sha256() {
  static const EVP_MD* md = [] {
    const EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    return fetched != nullptr ? fetched : EVP_sha256();
  }();
  return md;
}

}  // namespace

// -- names -----------------------------------------------------------------------------------

std::string_view role_name(role r) {
  switch (r) {
    case role::viewer:
      return "viewer";
    case role::operator_:
      return "operator";
    case role::owner:
      return "owner";
  }
  return "unknown";
}

bool parse_role(std::string_view name, role& out) {
  if (name == "viewer") {
    out = role::viewer;
  } else if (name == "operator") {
    out = role::operator_;
  } else if (name == "owner") {
    out = role::owner;
  } else {
    return false;
  }
  return true;
}

bool valid_slug(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  if (id[0] == '_' || id[0] == '-') return false;
  for (char c : id) {
    if (!slug_char(c)) return false;
  }
  return true;
}

bool valid_environment(std::string_view env) {
  return env == "dev" || env == "staging" || env == "prod";
}

bool valid_endpoint(std::string_view name) {
  return name == "chat" || name == "completions" || name == "embeddings" || name == "models";
}

bool valid_currency(std::string_view code) {
  return code == "CNY" || code == "USD";
}

// Greedy matching that only ever returns to the most recent `*`: a later star can absorb
// anything an earlier one could, so older stars never need revisiting. At most
// O(|pattern| x |text|) steps, and no recursion however many stars the pattern holds.
bool glob_match(std::string_view pattern, std::string_view text) {
  constexpr std::size_t none = std::string_view::npos;
  std::size_t p = 0, t = 0;
  std::size_t star = none;  // position of the last `*` seen in the pattern
  std::size_t mark = 0;     // text position that star currently starts matching at
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = t;
    } else if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
      ++p;
      ++t;
    } else if (star != none) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

// -- secrets ---------------------------------------------------------------------------------

std::string make_secret(std::string_view scheme, const uint8_t (&random)[32]) {
  static constexpr char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  out.reserve(scheme.size() + 43);
  out.append(scheme);
  std::size_t i = 0;
  for (; i + 3 <= 32; i += 3) {
    const uint32_t v = (uint32_t{random[i]} << 16) | (uint32_t{random[i + 1]} << 8) | random[i + 2];
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  // 32 = 10 x 3 + 2: the last two bytes give three characters (16 bits, 2 zero bits of padding).
  const uint32_t v = (uint32_t{random[i]} << 16) | (uint32_t{random[i + 1]} << 8);
  out += alphabet[(v >> 18) & 63];
  out += alphabet[(v >> 12) & 63];
  out += alphabet[(v >> 6) & 63];
  return out;
}

std::string secret_prefix(std::string_view secret) {
  return std::string(secret.substr(0, 12));
}

std::string secret_hash(std::string_view secret) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  const EVP_MD* algo = sha256();
  if (algo == nullptr || EVP_Digest(secret.data(), secret.size(), md, &len, algo, nullptr) != 1 ||
      len != 32) {
    // Only a broken OpenSSL gets here. Returning any fixed string would make every secret hash
    // alike (and so authenticate as each other), so stop instead.
    std::fputs("tc::accounts::secret_hash: SHA-256 is not available\n", stderr);
    std::abort();
  }
  static constexpr char digits[] = "0123456789abcdef";
  std::string out(64, '0');
  for (unsigned i = 0; i < 32; ++i) {
    out[2 * i] = digits[md[i] >> 4];
    out[2 * i + 1] = digits[md[i] & 0xf];
  }
  return out;
}

uint8_t request_priority(const api_key* key, uint8_t anonymous, uint8_t asked) {
  const uint8_t own = std::min(key != nullptr ? key->priority : anonymous, lowest_priority);
  if (asked > lowest_priority || asked >= own) return asked > lowest_priority ? own : asked;
  const uint8_t ceiling = key != nullptr ? key->max_priority : own;  // anonymous: never raised
  return std::max(asked, std::min(ceiling, own));
}

}  // namespace tc::accounts
