// Audit records and their hash chain (issue 5). One record per request; each record's hash is
// H(prev_hash || canonical bytes of the record), H = SHA-256 or SM3 through OpenSSL EVP, so
// flipping a byte, deleting a record or reordering records breaks the chain at that record.
// Text may be kept in clear, encrypted with SM4, or not at all (digests always). Pure; any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tc::audit {

enum class hash_algo : uint8_t { sha256 = 1, sm3 = 2 };
std::string_view hash_algo_name(hash_algo a);  ///< "sha256" | "sm3"
bool parse_hash_algo(std::string_view name, hash_algo& out);

/// Raw digest (32 bytes for both algorithms) of `bytes`.
std::string digest(hash_algo algo, std::string_view bytes);
/// digest(), remembered for this thread's recent inputs (up to 4 KB, compared in full): a
/// request sent again, as an exact cache hit usually is, is not hashed again.
std::string recent_digest(hash_algo algo, std::string_view bytes);
/// Lower-case hex of raw bytes.
std::string to_hex(std::string_view raw);

/// One moderation engine's verdict on one direction of a request.
struct engine_verdict {
  std::string engine;    ///< e.g. "keywords", "pii", "http"
  std::string verdict;   ///< allow | flag | mask | block | error | timeout
  std::string category;  ///< strongest finding's category; empty when none
  uint32_t latency_us = 0;
  friend bool operator==(const engine_verdict&, const engine_verdict&) = default;
};

struct audit_record {
  uint64_t seq = 0;  ///< 1, 2, 3 … per node; set by chain::append
  std::string node;  ///< node id
  std::string request_id;
  int64_t ts_ms = 0;  ///< unix milliseconds
  std::string tenant;
  std::string project;
  std::string key_id;  ///< key id, never the secret
  std::string model;
  std::string provider;
  std::string endpoint;
  int status = 0;
  uint32_t prompt_tokens = 0;
  uint32_t completion_tokens = 0;
  int64_t cost_micros = 0;
  std::string cost_currency;
  uint32_t latency_ms = 0;
  std::vector<engine_verdict> input_verdicts;
  std::vector<engine_verdict> output_verdicts;
  std::string input_digest;     ///< raw digest of the input text (same algo as the chain)
  std::string output_digest;    ///< raw digest of the output text
  bool text_encrypted = false;  ///< input_text/output_text hold sealed bytes (see seal())
  std::string input_text;       ///< empty when retention keeps digests only
  std::string output_text;
  std::string prev_hash;  ///< raw hash of record seq-1 (32 zero bytes for seq 1)
  std::string hash;       ///< raw H(prev_hash || canonical_bytes(record))
  friend bool operator==(const audit_record&, const audit_record&) = default;
};

/// Deterministic bytes of every field except `hash` (prev_hash included), length-prefixed so
/// no two different records share them.
std::string canonical_bytes(const audit_record& r);

/// Stored value: versioned bytes of the whole record including prev_hash and hash.
/// decode() returns false on anything encode() did not write (truncation, trailing bytes,
/// bad version) and never reads out of bounds.
std::string encode(const audit_record& r);
bool decode(std::string_view bytes, audit_record& out);

/// RocksDB key: node id, a 0x00 separator, then seq as 8 big-endian bytes (sorts by seq).
std::string record_key(std::string_view node, uint64_t seq);
/// Inverse of record_key; false if `key` is not one.
bool parse_record_key(std::string_view key, std::string& node, uint64_t& seq);

/// The writer's side: continues a node's chain.
class chain {
 public:
  /// A new chain (next seq 1), or one resumed after `last_seq` whose hash was `last_hash`.
  explicit chain(hash_algo algo, uint64_t last_seq = 0, std::string last_hash = {});
  /// Sets r.seq, r.prev_hash and r.hash; advances the chain.
  void append(audit_record& r);
  uint64_t last_seq() const { return last_seq_; }
  const std::string& last_hash() const { return last_hash_; }
  hash_algo algo() const { return algo_; }

 private:
  hash_algo algo_;
  uint64_t last_seq_;
  std::string last_hash_;
};

/// The auditor's side: feed stored (key, value) pairs of one node in key order.
class verifier {
 public:
  /// Expects the chain to start at `first_seq` whose prev_hash is `anchor_hash` (empty: 32
  /// zero bytes). Retention that prunes old records keeps the anchor of the first kept one.
  explicit verifier(hash_algo algo, uint64_t first_seq = 1, std::string anchor_hash = {});
  /// Checks one stored record. Returns false at the first broken record and keeps that as
  /// the result (later calls return false without looking). Broken means: a value that does
  /// not decode, a key whose seq is not the next expected one (a deleted record is named by its
  /// missing seq), a record whose seq or node differs from its key, a prev_hash that is not the
  /// previous record's hash, or a hash that does not match the record's bytes.
  bool feed(std::string_view key, std::string_view value);
  bool ok() const { return ok_; }
  uint64_t checked() const { return checked_; }          ///< records verified good
  uint64_t first_broken_seq() const { return broken_; }  ///< 0 while ok
  const std::string& reason() const { return reason_; }  ///< why it broke, for people
  const std::string& last_hash() const { return last_hash_; }

 private:
  hash_algo algo_;
  bool ok_ = true;
  uint64_t checked_ = 0;
  uint64_t broken_ = 0;
  uint64_t expected_seq_ = 1;
  std::string node_;
  std::string last_hash_;
  std::string reason_;
};

/// SM4 sealing of text at rest: SM4-CTR with a random 16-byte IV, then HMAC-SM3 over
/// IV || ciphertext (encrypt-then-MAC) with a MAC key derived from `key`. `key` is 16 raw bytes.
/// seal() returns IV || ciphertext || 32-byte tag; open() returns false on a wrong key, a bad
/// tag or truncated input.
std::string seal(std::string_view key, std::string_view plaintext);
bool open(std::string_view key, std::string_view sealed, std::string& plaintext);

}  // namespace tc::audit
