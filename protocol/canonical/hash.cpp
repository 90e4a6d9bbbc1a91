#include "protocol/canonical/hash.hpp"

#include <openssl/evp.h>

#include <cstring>
#include <stdexcept>

namespace tc::canonical {

namespace {

uint64_t load_be64(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return v;
}

/// SHA-256, fetched once: OpenSSL 3 looks an implicit EVP_sha256() up again (under locks) on
/// every init, measured at ~360 ns per digest.
const EVP_MD* sha256() {
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string digest::hex() const {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out(32, '0');
  for (int i = 0; i < 16; ++i) {
    out[15 - i] = digits[(hi >> (i * 4)) & 0xf];
    out[31 - i] = digits[(lo >> (i * 4)) & 0xf];
  }
  return out;
}

bool digest::parse_hex(std::string_view text, digest& out) {
  if (text.size() != 32) return false;
  digest d;
  for (std::size_t i = 0; i < 32; ++i) {
    const int v = hex_value(text[i]);
    if (v < 0) return false;
    uint64_t& half = i < 16 ? d.hi : d.lo;
    half = (half << 4) | static_cast<uint64_t>(v);
  }
  out = d;
  return true;
}

hasher::hasher() : ctx_(EVP_MD_CTX_new()) {
  // Only allocation failure can make these fail: a broken process, not bad input.
  if (ctx_ == nullptr || EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), sha256(), nullptr) != 1)
    throw std::runtime_error("SHA-256 is not available");
}

hasher::~hasher() {
  EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_));
}

hasher& hasher::add(std::string_view part) {
  add(static_cast<uint64_t>(part.size()));
  EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), part.data(), part.size());
  return *this;
}

hasher& hasher::add(const digest& d) {
  add(d.hi);
  return add(d.lo);
}

hasher& hasher::add(uint64_t v) {
  unsigned char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<unsigned char>(v >> (56 - 8 * i));
  EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), b, sizeof b);
  return *this;
}

digest hasher::finish() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  auto* ctx = static_cast<EVP_MD_CTX*>(ctx_);
  EVP_DigestFinal_ex(ctx, md, &len);
  EVP_DigestInit_ex(ctx, sha256(), nullptr);
  return digest{load_be64(md), load_be64(md + 8)};
}

digest digest_of(std::string_view s) {
  hasher h;
  return h.add(s).finish();
}

}  // namespace tc::canonical
