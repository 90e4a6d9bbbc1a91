// Token count estimates for text, without a tokenizer file. Pure; any thread.
#pragma once

#include <cstdint>
#include <string_view>

namespace tc {

/// Estimated number of BPE tokens in UTF-8 text: about 4 ASCII characters per token for
/// Latin text, about 1 token per CJK character, at least 1 for non-empty text.
uint32_t estimate_tokens(std::string_view utf8_text);

}  // namespace tc
