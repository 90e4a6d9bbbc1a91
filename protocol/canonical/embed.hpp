// The built-in embedder (issue 3): feature hashing of word and character n-grams, weighted and
// L2-normalised, with a configurable dimension and nothing downloaded. Deterministic across runs
// and machines. Pure; any thread.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace tc::canonical {

struct embed_options {
  uint32_t dimension = 256;    ///< output length
  float word_weight = 1.0f;    ///< each lower-cased word unigram
  float bigram_weight = 0.5f;  ///< each word bigram
  float char_weight = 0.25f;   ///< each character 3-, 4- and 5-gram of words (with boundaries)
};

/// The embedding of `text`: `dimension` floats, L2 norm 1 (all zero for text with no features).
/// Cosine similarity of two embeddings is their dot product.
std::vector<float> embed(std::string_view text, const embed_options& opt = {});

/// Dot product of two equal-length vectors.
float dot(const float* a, const float* b, uint32_t n);

}  // namespace tc::canonical
