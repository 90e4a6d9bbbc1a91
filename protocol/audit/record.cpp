// Audit records: canonical bytes, the stored format, keys, the hash chain and SM4 sealing.
//
// Contract notes beyond the header:
// - canonical_bytes() layout: the 11 raw bytes "tc.audit.v1" (format tag), then every field in
//   declaration order except `hash`: integers fixed-width little endian (seq, ts_ms,
//   cost_micros: 8 bytes; status, tokens, latency_ms, latency_us: 4; text_encrypted: 1 byte,
//   0 or 1), strings as a length and the bytes, verdict vectors as a count and then each verdict
//   (engine, verdict, category, latency_us). A length or count is a u32 LE; one of 2^32-1 or more
//   is the u32 0xffffffff followed by a u64 LE (never needed in practice, kept so the encoding
//   stays injective for any input). Signed integers are stored as their two's complement.
// - encode() = u8 version (1) || canonical_bytes || hash as a length-prefixed string. decode()
//   accepts exactly that: an unknown version or tag, short input, trailing bytes, a bool byte
//   other than 0/1 or a long length in the escaped form are rejected, so
//   encode(decode(x)) == x for every x that decodes. decode() does not check digest sizes; the
//   verifier does (prev_hash and hash must be 32 bytes).
// - digest() returns an empty string if OpenSSL fails (an allocation failure, or the algorithm
//   missing from the provider). chain::append() then leaves r.hash empty and does not advance
//   the chain; a writer must not store such a record (the verifier would reject it anyway).
// - record_key() with a node containing '\0' produces a key that parse_record_key() rejects.
// - seal(): SM4-CTR under `key` with a random IV (RAND_bytes), then HMAC-SM3 over IV || ciphertext
//   under mac_key = SM3(key || "tc-audit-mac"). Returns "" if the key is not 16 bytes or OpenSSL
//   fails (RAND_bytes, allocation). open() checks the tag with CRYPTO_memcmp before decrypting and
//   leaves `plaintext` untouched unless it returns true.
// - Algorithms are fetched once per process (EVP_*_fetch is slow in OpenSSL 3); digest and MAC
//   contexts are reused per thread. Every OpenSSL failure clears the thread's error queue so it
//   does not leak into other users of OpenSSL on that thread (e.g. TLS).
#include "protocol/audit/record.hpp"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <initializer_list>
#include <memory>

#include "protocol/memo.hpp"

namespace tc::audit {

namespace {

static_assert(sizeof(int) == 4, "status is stored as 4 bytes");

constexpr uint8_t kRecordVersion = 1;
constexpr std::string_view kCanonicalTag = "tc.audit.v1";
constexpr std::string_view kMacLabel = "tc-audit-mac";
constexpr std::size_t kDigestSize = 32;
constexpr std::size_t kKeySize = 16;
constexpr std::size_t kIvSize = 16;
constexpr std::size_t kTagSize = 32;
constexpr uint32_t kLongLength = 0xffffffffu;

// ---- OpenSSL algorithms and per-thread contexts ----

const EVP_MD* md_of(hash_algo a) {
  switch (a) {
    case hash_algo::sha256: {
      static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
      return md;
    }
    case hash_algo::sm3: {
      static EVP_MD* const md = EVP_MD_fetch(nullptr, "SM3", nullptr);
      return md;
    }
  }
  return nullptr;
}

const EVP_CIPHER* sm4_ctr() {
  static EVP_CIPHER* const cipher = EVP_CIPHER_fetch(nullptr, "SM4-CTR", nullptr);
  return cipher;
}

/// One digest context per algorithm and thread: re-initialising a context with the same
/// EVP_MD reuses its provider state instead of allocating.
struct thread_md_contexts {
  std::array<EVP_MD_CTX*, 3> ctx{};
  ~thread_md_contexts() {
    for (EVP_MD_CTX* c : ctx) EVP_MD_CTX_free(c);
  }
};

EVP_MD_CTX* md_ctx_of(hash_algo a) {
  thread_local thread_md_contexts contexts;
  const auto i = static_cast<std::size_t>(a);
  if (i >= contexts.ctx.size()) return nullptr;
  if (contexts.ctx[i] == nullptr) contexts.ctx[i] = EVP_MD_CTX_new();
  return contexts.ctx[i];
}

/// A per-thread HMAC-SM3 context: setting the digest parameter fetches SM3 again, so it is set
/// once and each use only re-keys it.
struct thread_mac_context {
  EVP_MAC_CTX* ctx = nullptr;
  ~thread_mac_context() { EVP_MAC_CTX_free(ctx); }
};

EVP_MAC_CTX* hmac_sm3_ctx() {
  static EVP_MAC* const mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  thread_local thread_mac_context holder;
  if (holder.ctx != nullptr || mac == nullptr) return holder.ctx;
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_new(mac);
  if (ctx == nullptr) return nullptr;
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", const_cast<char*>("SM3"), 0),
                         OSSL_PARAM_construct_end()};
  if (EVP_MAC_CTX_set_params(ctx, params) != 1) {
    EVP_MAC_CTX_free(ctx);
    return nullptr;
  }
  holder.ctx = ctx;
  return ctx;
}

struct cipher_ctx_free {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using cipher_ctx_ptr = std::unique_ptr<EVP_CIPHER_CTX, cipher_ctx_free>;

/// Clears the thread's OpenSSL error queue; returns `false` for `return failed();`.
bool failed() {
  ERR_clear_error();
  return false;
}

/// The same for functions returning a string.
std::string failed_text() {
  ERR_clear_error();
  return {};
}

const unsigned char* bytes_of(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

/// H(part_1 || part_2 || …) into `out` (32 raw bytes); false on an OpenSSL failure.
bool hash_parts(hash_algo a, std::initializer_list<std::string_view> parts, std::string& out) {
  const EVP_MD* md = md_of(a);
  EVP_MD_CTX* ctx = md_ctx_of(a);
  if (md == nullptr || ctx == nullptr) return failed();
  if (EVP_DigestInit_ex2(ctx, md, nullptr) != 1) return failed();
  for (std::string_view p : parts) {
    if (!p.empty() && EVP_DigestUpdate(ctx, p.data(), p.size()) != 1) return failed();
  }
  unsigned char buf[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx, buf, &len) != 1 || len != kDigestSize) return failed();
  out.assign(reinterpret_cast<const char*>(buf), len);
  return true;
}

/// HMAC-SM3(mac_key, data) into out[0..32).
bool hmac_sm3(std::string_view mac_key, std::string_view data, unsigned char* out) {
  EVP_MAC_CTX* ctx = hmac_sm3_ctx();
  if (ctx == nullptr) return failed();
  if (EVP_MAC_init(ctx, bytes_of(mac_key), mac_key.size(), nullptr) != 1) return failed();
  if (EVP_MAC_update(ctx, bytes_of(data), data.size()) != 1) return failed();
  std::size_t len = 0;
  if (EVP_MAC_final(ctx, out, &len, kTagSize) != 1 || len != kTagSize) return failed();
  return true;
}

bool derive_mac_key(std::string_view key, std::string& mac_key) {
  return hash_parts(hash_algo::sm3, {key, kMacLabel}, mac_key);
}

/// Runs EVP_CipherUpdate over `in` in pieces that fit its int lengths; CTR keeps sizes equal.
bool cipher_all(EVP_CIPHER_CTX* ctx, std::string_view in, unsigned char* out) {
  constexpr std::size_t kPiece = std::size_t{1} << 30;
  for (std::size_t done = 0; done < in.size();) {
    const std::size_t n = std::min(kPiece, in.size() - done);
    int written = 0;
    if (EVP_CipherUpdate(ctx, out + done, &written, bytes_of(in) + done, static_cast<int>(n)) !=
            1 ||
        static_cast<std::size_t>(written) != n)
      return false;
    done += n;
  }
  int tail = 0;
  return EVP_CipherFinal_ex(ctx, out + in.size(), &tail) == 1 && tail == 0;
}

// ---- byte writer / reader ----

class writer {
 public:
  explicit writer(std::string& out) : out_(out) {}
  void u8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u32(uint32_t v) {
    char b[4];
    for (int i = 0; i < 4; ++i) b[i] = static_cast<char>(v >> (8 * i));
    out_.append(b, 4);
  }
  void u64(uint64_t v) {
    char b[8];
    for (int i = 0; i < 8; ++i) b[i] = static_cast<char>(v >> (8 * i));
    out_.append(b, 8);
  }
  void len(std::size_t n) {
    if (n < kLongLength) {
      u32(static_cast<uint32_t>(n));
    } else {
      u32(kLongLength);
      u64(n);
    }
  }
  void str(std::string_view s) {
    len(s.size());
    out_.append(s);
  }
  void raw(std::string_view s) { out_.append(s); }

 private:
  std::string& out_;
};

class reader {
 public:
  explicit reader(std::string_view in) : in_(in) {}
  bool u8(uint8_t& v) {
    if (in_.size() - pos_ < 1) return false;
    v = static_cast<uint8_t>(in_[pos_++]);
    return true;
  }
  bool u32(uint32_t& v) {
    if (in_.size() - pos_ < 4) return false;
    v = 0;
    for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(in_[pos_ + i]);
    pos_ += 4;
    return true;
  }
  bool u64(uint64_t& v) {
    if (in_.size() - pos_ < 8) return false;
    v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(in_[pos_ + i]);
    pos_ += 8;
    return true;
  }
  bool i32(int& v) {
    uint32_t u = 0;
    if (!u32(u)) return false;
    v = static_cast<int>(u);
    return true;
  }
  bool i64(int64_t& v) {
    uint64_t u = 0;
    if (!u64(u)) return false;
    v = static_cast<int64_t>(u);
    return true;
  }
  bool boolean(bool& v) {
    uint8_t b = 0;
    if (!u8(b) || b > 1) return false;
    v = b == 1;
    return true;
  }
  /// A length or count; the escaped form must be one the writer would have used.
  bool len(uint64_t& n) {
    uint32_t short_form = 0;
    if (!u32(short_form)) return false;
    if (short_form != kLongLength) {
      n = short_form;
      return true;
    }
    return u64(n) && n >= kLongLength;
  }
  bool str(std::string& s) {
    uint64_t n = 0;
    if (!len(n) || n > in_.size() - pos_) return false;
    s.assign(in_.data() + pos_, static_cast<std::size_t>(n));
    pos_ += static_cast<std::size_t>(n);
    return true;
  }
  bool raw(std::string_view expected) {
    if (in_.substr(pos_, expected.size()) != expected) return false;
    pos_ += expected.size();
    return true;
  }
  bool at_end() const { return pos_ == in_.size(); }

 private:
  std::string_view in_;
  std::size_t pos_ = 0;
};

void write_verdicts(writer& w, const std::vector<engine_verdict>& vs) {
  w.len(vs.size());
  for (const engine_verdict& v : vs) {
    w.str(v.engine);
    w.str(v.verdict);
    w.str(v.category);
    w.u32(v.latency_us);
  }
}

bool read_verdicts(reader& rd, std::vector<engine_verdict>& vs) {
  uint64_t n = 0;
  if (!rd.len(n)) return false;
  // Each verdict takes at least 16 bytes, so a bogus count fails at the first missing one.
  for (uint64_t i = 0; i < n; ++i) {
    engine_verdict v;
    if (!rd.str(v.engine) || !rd.str(v.verdict) || !rd.str(v.category) || !rd.u32(v.latency_us))
      return false;
    vs.push_back(std::move(v));
  }
  return true;
}

void write_canonical(writer& w, const audit_record& r) {
  w.raw(kCanonicalTag);
  w.u64(r.seq);
  w.str(r.node);
  w.str(r.request_id);
  w.u64(static_cast<uint64_t>(r.ts_ms));
  w.str(r.tenant);
  w.str(r.project);
  w.str(r.key_id);
  w.str(r.model);
  w.str(r.provider);
  w.str(r.endpoint);
  w.u32(static_cast<uint32_t>(r.status));
  w.u32(r.prompt_tokens);
  w.u32(r.completion_tokens);
  w.u64(static_cast<uint64_t>(r.cost_micros));
  w.str(r.cost_currency);
  w.u32(r.latency_ms);
  write_verdicts(w, r.input_verdicts);
  write_verdicts(w, r.output_verdicts);
  w.str(r.input_digest);
  w.str(r.output_digest);
  w.u8(r.text_encrypted ? 1 : 0);
  w.str(r.input_text);
  w.str(r.output_text);
  w.str(r.prev_hash);
}

bool read_canonical(reader& rd, audit_record& r) {
  return rd.raw(kCanonicalTag) && rd.u64(r.seq) && rd.str(r.node) && rd.str(r.request_id) &&
         rd.i64(r.ts_ms) && rd.str(r.tenant) && rd.str(r.project) && rd.str(r.key_id) &&
         rd.str(r.model) && rd.str(r.provider) && rd.str(r.endpoint) && rd.i32(r.status) &&
         rd.u32(r.prompt_tokens) && rd.u32(r.completion_tokens) && rd.i64(r.cost_micros) &&
         rd.str(r.cost_currency) && rd.u32(r.latency_ms) && read_verdicts(rd, r.input_verdicts) &&
         read_verdicts(rd, r.output_verdicts) && rd.str(r.input_digest) &&
         rd.str(r.output_digest) && rd.boolean(r.text_encrypted) && rd.str(r.input_text) &&
         rd.str(r.output_text) && rd.str(r.prev_hash);
}

std::size_t canonical_size_hint(const audit_record& r) {
  std::size_t n = 256 + r.node.size() + r.request_id.size() + r.tenant.size() + r.project.size() +
                  r.key_id.size() + r.model.size() + r.provider.size() + r.endpoint.size() +
                  r.cost_currency.size() + r.input_digest.size() + r.output_digest.size() +
                  r.input_text.size() + r.output_text.size() + r.prev_hash.size() + r.hash.size();
  for (const auto* vs : {&r.input_verdicts, &r.output_verdicts})
    for (const engine_verdict& v : *vs)
      n += 16 + v.engine.size() + v.verdict.size() + v.category.size();
  return n;
}

/// The record's chain hash H(prev_hash || canonical_bytes(r)) into `out`; false on failure.
/// The canonical bytes go through a per-thread buffer so steady-state hashing allocates nothing.
bool record_hash(hash_algo a, const audit_record& r, std::string& out) {
  thread_local std::string buf;
  buf.clear();
  buf.reserve(canonical_size_hint(r));
  writer w(buf);
  write_canonical(w, r);
  const bool ok = hash_parts(a, {r.prev_hash, buf}, out);
  // Don't keep a huge buffer alive on this thread after one outsized record.
  if (buf.capacity() > (std::size_t{1} << 20)) std::string().swap(buf);
  return ok;
}

std::string zero_hash() {
  return std::string(kDigestSize, '\0');
}

}  // namespace

std::string_view hash_algo_name(hash_algo a) {
  switch (a) {
    case hash_algo::sha256:
      return "sha256";
    case hash_algo::sm3:
      return "sm3";
  }
  return "unknown";
}

bool parse_hash_algo(std::string_view name, hash_algo& out) {
  if (name == "sha256") {
    out = hash_algo::sha256;
  } else if (name == "sm3") {
    out = hash_algo::sm3;
  } else {
    return false;
  }
  return true;
}

std::string digest(hash_algo algo, std::string_view bytes) {
  std::string out;
  if (!hash_parts(algo, {bytes}, out)) out.clear();
  return out;
}

std::string recent_digest(hash_algo algo, std::string_view bytes) {
  thread_local recent_results<std::string, 1> memo;
  const auto tag = static_cast<uint64_t>(algo);
  if (const std::string* known = memo.find(tag, {bytes})) return *known;
  std::string out = digest(algo, bytes);
  if (!out.empty()) memo.keep(tag, {bytes}, out);
  return out;
}

std::string to_hex(std::string_view raw) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(raw.size() * 2, '0');
  for (std::size_t i = 0; i < raw.size(); ++i) {
    const auto b = static_cast<uint8_t>(raw[i]);
    out[2 * i] = kDigits[b >> 4];
    out[2 * i + 1] = kDigits[b & 0xf];
  }
  return out;
}

std::string canonical_bytes(const audit_record& r) {
  std::string out;
  out.reserve(canonical_size_hint(r));
  writer w(out);
  write_canonical(w, r);
  return out;
}

std::string encode(const audit_record& r) {
  std::string out;
  out.reserve(canonical_size_hint(r) + 1);
  writer w(out);
  w.u8(kRecordVersion);
  write_canonical(w, r);
  w.str(r.hash);
  return out;
}

bool decode(std::string_view bytes, audit_record& out) {
  reader rd(bytes);
  uint8_t version = 0;
  if (!rd.u8(version) || version != kRecordVersion) return false;
  audit_record r;
  if (!read_canonical(rd, r) || !rd.str(r.hash) || !rd.at_end()) return false;
  out = std::move(r);
  return true;
}

std::string record_key(std::string_view node, uint64_t seq) {
  std::string key;
  key.reserve(node.size() + 9);
  key.append(node);
  key.push_back('\0');
  for (int i = 7; i >= 0; --i) key.push_back(static_cast<char>(seq >> (8 * i)));
  return key;
}

bool parse_record_key(std::string_view key, std::string& node, uint64_t& seq) {
  if (key.size() < 9) return false;
  const std::size_t sep = key.size() - 9;
  if (key[sep] != '\0' || key.substr(0, sep).find('\0') != std::string_view::npos) return false;
  uint64_t v = 0;
  for (std::size_t i = sep + 1; i < key.size(); ++i) v = (v << 8) | static_cast<uint8_t>(key[i]);
  node.assign(key.data(), sep);
  seq = v;
  return true;
}

// ---- chain ----

chain::chain(hash_algo algo, uint64_t last_seq, std::string last_hash)
    : algo_(algo),
      last_seq_(last_seq),
      last_hash_(last_hash.empty() ? zero_hash() : std::move(last_hash)) {}

void chain::append(audit_record& r) {
  r.seq = last_seq_ + 1;
  r.prev_hash = last_hash_;
  if (!record_hash(algo_, r, r.hash)) {
    r.hash.clear();  // see the contract notes: the chain does not advance
    return;
  }
  last_seq_ = r.seq;
  last_hash_ = r.hash;
}

// ---- verifier ----

verifier::verifier(hash_algo algo, uint64_t first_seq, std::string anchor_hash)
    : algo_(algo),
      expected_seq_(first_seq),
      last_hash_(anchor_hash.empty() ? zero_hash() : std::move(anchor_hash)) {}

bool verifier::feed(std::string_view key, std::string_view value) {
  if (!ok_) return false;
  const auto fail = [this](uint64_t seq, std::string why) {
    ok_ = false;
    broken_ = seq;
    reason_ = std::move(why);
    return false;
  };
  const auto seq_text = [](uint64_t s) { return std::to_string(s); };

  std::string key_node;
  uint64_t key_seq = 0;
  if (!parse_record_key(key, key_node, key_seq))
    return fail(expected_seq_,
                "malformed key where seq " + seq_text(expected_seq_) + " was expected");
  if (checked_ > 0 && key_node != node_)
    return fail(expected_seq_,
                "key of another node where seq " + seq_text(expected_seq_) + " was expected");
  if (key_seq > expected_seq_)
    return fail(expected_seq_, "seq " + seq_text(expected_seq_) + " is missing (next key has seq " +
                                   seq_text(key_seq) + ")");
  if (key_seq < expected_seq_)
    return fail(expected_seq_, "key seq " + seq_text(key_seq) +
                                   " repeats or is out of order where " + seq_text(expected_seq_) +
                                   " was expected");

  audit_record r;
  if (!decode(value, r)) return fail(key_seq, "value does not decode");
  if (r.seq != key_seq)
    return fail(key_seq,
                "record says seq " + seq_text(r.seq) + ", its key says " + seq_text(key_seq));
  if (r.node != key_node) return fail(key_seq, "record's node differs from its key's");
  if (r.prev_hash != last_hash_)
    return fail(key_seq, "prev_hash is not the previous record's hash");
  if (r.hash.size() != kDigestSize) return fail(key_seq, "hash has the wrong size");
  std::string computed;
  if (!record_hash(algo_, r, computed))
    return fail(key_seq, std::string("cannot compute ") + std::string(hash_algo_name(algo_)));
  if (CRYPTO_memcmp(computed.data(), r.hash.data(), kDigestSize) != 0)
    return fail(key_seq, "hash does not match the record's bytes");

  if (checked_ == 0) node_ = std::move(key_node);
  last_hash_ = std::move(r.hash);
  ++expected_seq_;
  ++checked_;
  return true;
}

// ---- sealing ----

std::string seal(std::string_view key, std::string_view plaintext) {
  if (key.size() != kKeySize || sm4_ctr() == nullptr) return {};
  if (plaintext.size() > std::string().max_size() - kIvSize - kTagSize) return {};
  std::string mac_key;
  if (!derive_mac_key(key, mac_key)) return {};

  std::string out(kIvSize + plaintext.size() + kTagSize, '\0');
  auto* p = reinterpret_cast<unsigned char*>(out.data());
  if (RAND_bytes(p, static_cast<int>(kIvSize)) != 1) return failed_text();
  cipher_ctx_ptr ctx(EVP_CIPHER_CTX_new());
  if (ctx == nullptr || EVP_EncryptInit_ex2(ctx.get(), sm4_ctr(), bytes_of(key), p, nullptr) != 1 ||
      !cipher_all(ctx.get(), plaintext, p + kIvSize))
    return failed_text();
  const std::string_view authenticated(out.data(), kIvSize + plaintext.size());
  if (!hmac_sm3(mac_key, authenticated, p + kIvSize + plaintext.size())) return {};
  return out;
}

bool open(std::string_view key, std::string_view sealed, std::string& plaintext) {
  if (key.size() != kKeySize || sealed.size() < kIvSize + kTagSize || sm4_ctr() == nullptr)
    return false;
  std::string mac_key;
  if (!derive_mac_key(key, mac_key)) return false;
  const std::string_view authenticated = sealed.substr(0, sealed.size() - kTagSize);
  unsigned char tag[kTagSize];
  if (!hmac_sm3(mac_key, authenticated, tag)) return false;
  if (CRYPTO_memcmp(tag, sealed.data() + authenticated.size(), kTagSize) != 0) return false;

  const std::string_view ciphertext = authenticated.substr(kIvSize);
  std::string out(ciphertext.size(), '\0');
  cipher_ctx_ptr ctx(EVP_CIPHER_CTX_new());
  if (ctx == nullptr ||
      EVP_DecryptInit_ex2(ctx.get(), sm4_ctr(), bytes_of(key), bytes_of(sealed), nullptr) != 1 ||
      !cipher_all(ctx.get(), ciphertext, reinterpret_cast<unsigned char*>(out.data())))
    return failed();
  plaintext = std::move(out);
  return true;
}

}  // namespace tc::audit
