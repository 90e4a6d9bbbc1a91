// 128-bit content digests for cache and dedup keys: the first 16 bytes of SHA-256 (OpenSSL EVP,
// SHA-NI on this machine). A digest names a request's whole output-affecting content, so it must
// not collide in practice: a collision would serve one request's answer to another.
// Pure; any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include <caf/meta/type_name.hpp>

namespace tc::canonical {

/// A 128-bit digest. All-zero means "none".
struct digest {
  uint64_t hi = 0;
  uint64_t lo = 0;

  bool empty() const { return hi == 0 && lo == 0; }
  friend bool operator==(const digest&, const digest&) = default;
  friend auto operator<=>(const digest&, const digest&) = default;

  /// 32 lowercase hex digits.
  std::string hex() const;
  /// Parses 32 hex digits; false (and `out` untouched) if `text` is not that.
  static bool parse_hex(std::string_view text, digest& out);

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, digest& x) {
    return f(caf::meta::type_name("tc::canonical::digest"), x.hi, x.lo);
  }
};

/// Incremental SHA-256, truncated to a digest. Each part added with add() is length-prefixed,
/// so ("ab","c") and ("a","bc") differ.
class hasher {
 public:
  hasher();
  ~hasher();
  hasher(const hasher&) = delete;
  hasher& operator=(const hasher&) = delete;

  /// Adds one length-prefixed part.
  hasher& add(std::string_view part);
  hasher& add(const digest& d);
  hasher& add(uint64_t v);
  /// The digest of everything added; the hasher is reset for reuse.
  digest finish();

 private:
  void* ctx_;  // EVP_MD_CTX
};

/// The digest of one string (as if hasher{}.add(s).finish()).
digest digest_of(std::string_view s);

}  // namespace tc::canonical

template <>
struct std::hash<tc::canonical::digest> {
  std::size_t operator()(const tc::canonical::digest& d) const noexcept {
    return static_cast<std::size_t>(d.lo ^ (d.hi * 0x9e3779b97f4a7c15ULL));
  }
};
