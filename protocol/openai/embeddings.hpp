// The /v1/embeddings call the gateway makes itself (the semantic cache tier's `openai`
// embedder, actors/embedder): the request body for a list of texts, and the vectors read back
// from an answer that came from outside (validated, never trusted). Pure; any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tc::openai {

/// {"model":model,"input":[texts...]} plus "dimensions" when `dimensions` is not 0. Texts with
/// invalid UTF-8 have those bytes replaced (the body always parses).
std::string embeddings_body(std::string_view model, const std::vector<std::string>& texts,
                            uint32_t dimensions = 0);

/// Reads an embeddings answer for `count` inputs into `out` (out[i] is input i's vector, found by
/// `data[].index`). An `embedding` may be an array of numbers or a base64 string of
/// little-endian float32s. Every index 0..count-1 must appear exactly once, each vector must
/// have `dimension` finite values. False with a short reason in `error` otherwise ("bad_json",
/// "count", "dimension", "value").
bool parse_embeddings(std::string_view json, size_t count, uint32_t dimension,
                      std::vector<std::vector<float>>& out, std::string& error);

/// Scales `v` to length 1 (a zero vector stays zero). Returns false if a value is not finite.
bool l2_normalize(std::vector<float>& v);

}  // namespace tc::openai
