// Whether an upstream answer may be cached (issue 3): errors, truncated answers and
// content-filtered answers never are. Pure; any thread.
#pragma once

#include <string_view>

namespace tc::openai {

/// True for a complete, successful non-stream answer: a JSON object without "error" that is
/// either a chat.completion / text_completion whose every choice finished with a reason other
/// than "length" or "content_filter", or an embeddings list with data.
bool answer_cacheable(std::string_view json);

}  // namespace tc::openai
