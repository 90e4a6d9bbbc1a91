// Deterministic content of the simulated provider: English-like words, tool-call arguments from
// a JSON schema, embedding vectors, and the small JSON/base64 helpers they need. Pure functions
// of their inputs; any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/document.h>

namespace tc::sim {

/// FNV-1a 64 over bytes, continuing from `h`.
uint64_t fnv1a64(std::string_view bytes, uint64_t h = 0xcbf29ce484222325ULL);

/// splitmix64 finaliser: a well-spread 64-bit mix of x.
uint64_t mix64(uint64_t x);

/// Uniform in [0,1) from a 64-bit value.
inline double unit_interval(uint64_t x) {
  return static_cast<double>(x >> 11) * 0x1.0p-53;
}

/// Appends s as a quoted JSON string literal (quotes, backslash and control bytes escaped;
/// other bytes copied as they are).
void append_json_string(std::string& out, std::string_view s);

/// Appends the decimal text of v.
void append_uint(std::string& out, uint64_t v);

/// Appends 16 lower-case hex digits of v.
void append_hex64(std::string& out, uint64_t v);

/// Appends the shortest decimal text that reads back as exactly f (as float32).
void append_float(std::string& out, float f);

/// Appends token k (0-based) of the text of `seed` that has `length` tokens: one word, with a
/// leading space unless k is 0, capitalised at sentence starts, a full stop at sentence ends
/// and, when `final_stop`, after the last token. Every token is one word without spaces.
void append_token(std::string& out, uint64_t seed, uint32_t k, uint32_t length, bool final_stop);

/// Deterministic completion length for `seed`: in [max(1, d/2), max(1, d)].
uint32_t text_length(uint64_t seed, uint32_t default_max_tokens);

/// Tool-call arguments: a JSON object text with one deterministic value per property of the
/// JSON schema `parameters` (enum: first value; string: a word; number/integer: a number;
/// boolean: true; array: []; object: its own properties, or {}). Non-object schema: "{}".
std::string tool_arguments(const rapidjson::Value* parameters, uint64_t seed);

/// Byte offsets splitting `text` into stream fragments of about 4 bytes, never inside a UTF-8
/// sequence. Returns the end offset of each fragment (at least one fragment).
std::vector<uint32_t> fragment_ends(std::string_view text);

/// Deterministic L2-normalised embedding of text: hashed word and word-pair features (so
/// texts sharing words are close), a dense fallback for text without words.
void embed_text(std::string_view text, uint64_t seed, uint32_t dim, std::vector<float>& out);

/// Standard base64 (RFC 4648, padded).
void append_base64(std::string& out, const void* data, std::size_t size);

/// Decodes standard padded base64; false on malformed input.
bool base64_decode(std::string_view in, std::string& out);

}  // namespace tc::sim
